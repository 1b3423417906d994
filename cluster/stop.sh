#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Stop the scheduler and workers this machine started with the cluster scripts.
# Each was started as the leader of its own session, so signalling its process
# group also reaches the nanny's worker process and any ISIS/ASP program still
# running under it. SIGTERM first, SIGKILL after $CTXDASK_STOP_GRACE seconds.
#
#   cluster/stop.sh [workers|scheduler|all]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=env.sh
. "$here/env.sh"
what="${1:-all}"
grace="${CTXDASK_STOP_GRACE:-10}"

pidfiles=()
case "$what" in
    workers) pattern='worker-*.pid' ;;
    scheduler) pattern='scheduler.pid' ;;
    all) pattern='*.pid' ;;
    *) echo "usage: stop.sh [workers|scheduler|all]" >&2; exit 2 ;;
esac
while IFS= read -r -d '' f; do pidfiles+=("$f"); done \
    < <(find "$CTXDASK_RUN_DIR" -maxdepth 1 -name "$pattern" -print0 2>/dev/null)

# A pid file left by a process that died without stop.sh (OOM killer, kill -9) names a pid the
# kernel may since have given to someone else's program on this shared machine: a group is
# signalled only while its leader is still a dask process, or gone (a process group id still in
# use is never handed out again, so a leaderless group of that id is still ours).
ours() {
    [ -r "/proc/$1/cmdline" ] || return 0
    tr '\0' ' ' <"/proc/$1/cmdline" | grep -q dask
}
live=()
for f in "${pidfiles[@]}"; do
    pid="$(cat "$f")"
    if ! ours "$pid"; then
        echo "$f: pid $pid is now another program; not signalled" >&2
        rm -f "$f"
        continue
    fi
    live+=("$f")
    kill -TERM -- "-$pid" 2>/dev/null || true
done
pidfiles=("${live[@]}")
for f in "${pidfiles[@]}"; do
    pid="$(cat "$f")"
    for _ in $(seq 1 $((grace * 10))); do
        kill -0 -- "-$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 -- "-$pid" 2>/dev/null; then
        echo "process group $pid ignored SIGTERM for ${grace}s: SIGKILL" >&2
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$f"
done
echo "stopped ${#pidfiles[@]} process groups"
