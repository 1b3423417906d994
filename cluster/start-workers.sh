#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Start ctxdask workers on a list of hosts over SSH.
#
#   cluster/start-workers.sh HOSTS_FILE [SCHEDULER_ADDRESS]
#
# HOSTS_FILE: one host per line ("user@host" works; '#' starts a comment). Each host
# must have the same ctxdask environment at $CTXDASK_PYTHON_ENV and this cluster/
# folder at the same path (or set CTXDASK_REMOTE_DIR). localhost and 127.0.0.1 are
# started directly, without SSH.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=env.sh
. "$here/env.sh"

hosts_file="${1:?usage: start-workers.sh HOSTS_FILE [SCHEDULER_ADDRESS]}"
address="${2:-$(ctxdask_scheduler_address)}"
remote_dir="${CTXDASK_REMOTE_DIR:-$here}"
read -r -a ssh_cmd <<<"$CTXDASK_SSH"

n=0
while read -r host _; do
    case "$host" in ''|'#'*) continue ;; esac
    n=$((n + 1))
    name="${host#*@}-$n"
    if [ "$host" = localhost ] || [ "$host" = 127.0.0.1 ]; then
        "$here/start-worker.sh" "$address" "$name"
    else
        # pass the settings explicitly: a non-interactive SSH shell has no profile
        env_args=()
        for var in CTXDASK_PROTOCOL CTXDASK_TLS_DIR CTXDASK_NTHREADS CTXDASK_MEMORY_LIMIT \
                   CTXDASK_RESOURCES CTXDASK_LOCAL_DIRECTORY CTXDASK_WORKER_PORT \
                   CTXDASK_NANNY_PORT CTXDASK_PYTHON_ENV; do
            env_args+=("$var=$(printf '%q' "${!var}")")
        done
        "${ssh_cmd[@]}" "$host" env "${env_args[@]}" \
            "$(printf '%q' "$remote_dir/start-worker.sh")" "$(printf '%q' "$address")" "$(printf '%q' "$name")"
    fi
done <"$hosts_file"
echo "started $n workers"
