#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Start one dask worker for ctxdask on this machine, in the background.
# start-workers.sh runs this on each host over SSH; run it by hand on a single machine.
#
#   cluster/start-worker.sh [SCHEDULER_ADDRESS] [NAME]
#
# The worker declares $CTXDASK_RESOURCES (stereo=1: one ASP correlation at a time),
# keeps scratch in $CTXDASK_LOCAL_DIRECTORY, and uses fixed ports when
# CTXDASK_WORKER_PORT / CTXDASK_NANNY_PORT are set (for SSH tunnels).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=env.sh
. "$here/env.sh"

address="${1:-$(ctxdask_scheduler_address)}"
name="${2:-$(hostname -s)-$$}"
mkdir -p "$CTXDASK_RUN_DIR" "$CTXDASK_LOCAL_DIRECTORY"

args=(worker "$address" --name "$name" --nthreads "$CTXDASK_NTHREADS" --nworkers 1
      --memory-limit "$CTXDASK_MEMORY_LIMIT" --resources "$CTXDASK_RESOURCES"
      --local-directory "$CTXDASK_LOCAL_DIRECTORY" --no-dashboard)
[ -n "$CTXDASK_WORKER_PORT" ] && args+=(--worker-port "$CTXDASK_WORKER_PORT")
[ -n "$CTXDASK_NANNY_PORT" ] && args+=(--nanny-port "$CTXDASK_NANNY_PORT")
mapfile -t tls < <(ctxdask_tls_args)
args+=("${tls[@]}")

setsid "$(command -v bash)" -c 'exec "$@"' ctxdask-worker \
    "${CTXDASK_PYTHON_ENV:+$CTXDASK_PYTHON_ENV/bin/}dask" "${args[@]}" \
    >"$CTXDASK_RUN_DIR/worker-$name.log" 2>&1 </dev/null &
echo $! >"$CTXDASK_RUN_DIR/worker-$name.pid"
echo "worker $name (pid $!) -> $address; log $CTXDASK_RUN_DIR/worker-$name.log"
