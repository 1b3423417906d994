#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Start the dask scheduler for ctxdask on this machine, in the background.
#
#   cluster/start-scheduler.sh            # tcp://$(hostname -f):8786, dashboard :8787
#   CTXDASK_PROTOCOL=tls cluster/start-scheduler.sh
#
# Writes its pid and log under $CTXDASK_RUN_DIR and the contact file
# $CTXDASK_SCHEDULER_FILE; prints the address clients and workers use.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=env.sh
. "$here/env.sh"

mkdir -p "$CTXDASK_RUN_DIR" "$(dirname "$CTXDASK_SCHEDULER_FILE")"
pidfile="$CTXDASK_RUN_DIR/scheduler.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "a scheduler is already running (pid $(cat "$pidfile")); stop it with cluster/stop.sh" >&2
    exit 1
fi

mapfile -t tls < <(ctxdask_tls_args)
rm -f "$CTXDASK_SCHEDULER_FILE"
# setsid: the scheduler leads its own session, so stop.sh can signal its whole group
setsid "$(command -v bash)" -c 'exec "$@"' ctxdask-scheduler \
    "${CTXDASK_PYTHON_ENV:+$CTXDASK_PYTHON_ENV/bin/}dask" scheduler \
    --protocol "$CTXDASK_PROTOCOL" --host "$CTXDASK_SCHEDULER_HOST" --port "$CTXDASK_SCHEDULER_PORT" \
    --dashboard-address ":$CTXDASK_DASHBOARD_PORT" --scheduler-file "$CTXDASK_SCHEDULER_FILE" \
    "${tls[@]}" >"$CTXDASK_RUN_DIR/scheduler.log" 2>&1 </dev/null &
echo $! >"$pidfile"

# wait until the scheduler has written its contact file (or died)
for _ in $(seq 1 120); do
    [ -s "$CTXDASK_SCHEDULER_FILE" ] && break
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "the scheduler exited; its log:" >&2
        tail -n 30 "$CTXDASK_RUN_DIR/scheduler.log" >&2
        exit 1
    fi
    sleep 0.5
done
[ -s "$CTXDASK_SCHEDULER_FILE" ] || { echo "the scheduler did not start within 60 s" >&2; exit 1; }
echo "scheduler $(ctxdask_scheduler_address) (pid $(cat "$pidfile")), dashboard port $CTXDASK_DASHBOARD_PORT"
echo "contact file: $CTXDASK_SCHEDULER_FILE"
