# shellcheck shell=bash
# Settings shared by the ctxdask cluster scripts. Source it; override any value in the
# environment (or in cluster/site.env, read last if it exists) before calling a script.

# scheduler address as workers and clients reach it
: "${CTXDASK_SCHEDULER_HOST:=$(hostname -f 2>/dev/null || hostname)}"
: "${CTXDASK_SCHEDULER_PORT:=8786}"
: "${CTXDASK_DASHBOARD_PORT:=8787}"
# "tcp" or "tls" (tls needs the files made by cluster/tls/make-certs.sh)
: "${CTXDASK_PROTOCOL:=tcp}"
: "${CTXDASK_TLS_DIR:=$HOME/.config/ctxdask/tls}"
# where the scheduler writes its contact file (clients: ctxdask.connect(scheduler_file=...))
: "${CTXDASK_SCHEDULER_FILE:=$HOME/.config/ctxdask/scheduler.json}"
# workers: threads per worker, memory limit, resources, scratch, fixed ports for tunnels
: "${CTXDASK_NTHREADS:=1}"
: "${CTXDASK_MEMORY_LIMIT:=auto}"
: "${CTXDASK_RESOURCES:=stereo=1}"
: "${CTXDASK_LOCAL_DIRECTORY:=/tmp/ctxdask-worker}"
: "${CTXDASK_WORKER_PORT:=}"
: "${CTXDASK_NANNY_PORT:=}"
# the Python environment holding ctxdask on every machine (same versions everywhere)
: "${CTXDASK_PYTHON_ENV:=}"
# pid and log files of what the scripts start on this machine
: "${CTXDASK_RUN_DIR:=${XDG_RUNTIME_DIR:-/tmp}/ctxdask-cluster}"
# how to reach other machines (an argv prefix, e.g. "ssh -o BatchMode=yes")
: "${CTXDASK_SSH:=ssh -o BatchMode=yes}"

ctxdask_site_env="$(dirname "${BASH_SOURCE[0]}")/site.env"
# shellcheck source=/dev/null
[ -f "$ctxdask_site_env" ] && . "$ctxdask_site_env"

ctxdask_dask() {
    # run the dask command of the configured environment
    if [ -n "$CTXDASK_PYTHON_ENV" ]; then
        "$CTXDASK_PYTHON_ENV/bin/dask" "$@"
    else
        dask "$@"
    fi
}

ctxdask_tls_args() {
    # print the TLS options of dask scheduler/worker, one per line
    if [ "$CTXDASK_PROTOCOL" = "tls" ]; then
        printf '%s\n' --tls-ca-file "$CTXDASK_TLS_DIR/ca.pem" \
            --tls-cert "$CTXDASK_TLS_DIR/node.pem" --tls-key "$CTXDASK_TLS_DIR/node-key.pem"
    fi
}

ctxdask_scheduler_address() {
    printf '%s://%s:%s\n' "$CTXDASK_PROTOCOL" "$CTXDASK_SCHEDULER_HOST" "$CTXDASK_SCHEDULER_PORT"
}
