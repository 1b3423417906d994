"""The cluster/ scripts for real: a TLS scheduler and two workers on 127.0.0.1 run a batch.

One worker is SIGKILLed mid-batch; the batch still completes on the other. Then
cluster/stop.sh stops everything and no process of the deployment is left.
"""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest

from ctxdask.batch import run_batch
from ctxdask.tools.recipe import build_recipe

from .batch.conftest import make_images, query, write_pairs
from .tools.conftest import standin_path

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(300)]

CLUSTER = pathlib.Path(__file__).resolve().parents[1] / "cluster"
IMAGES = [f"B{20 + i:02d}_0{23341 + i:05d}_1010_XN_79S172W" for i in range(6)]
PAIRS = [(IMAGES[0], IMAGES[1]), (IMAGES[1], IMAGES[2]), (IMAGES[2], IMAGES[3]), (IMAGES[3], IMAGES[4]),
         (IMAGES[4], IMAGES[5]), (IMAGES[0], IMAGES[5])]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _script(name, env, *args, timeout=120):
    result = subprocess.run([str(CLUSTER / name), *map(str, args)], env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _deployment_processes(markers: list[str]) -> list[psutil.Process]:
    """Live processes whose command line names this deployment (its run dir, ports or scratch)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            if proc.info["status"] != psutil.STATUS_ZOMBIE and any(m in cmdline for m in markers):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_tls_cluster_from_scripts_survives_a_killed_worker(tmp_path):
    from distributed import Client
    from distributed.security import Security

    tls = tmp_path / "tls"
    subprocess.run([str(CLUSTER / "tls" / "make-certs.sh"), str(tls), "127.0.0.1", "localhost"], check=True,
                   capture_output=True)
    port, dashboard = _free_port(), _free_port()
    run_dir, scratch = tmp_path / "run", tmp_path / "scratch"
    env = dict(
        os.environ,
        PATH=standin_path(),
        CTXDASK_PYTHON_ENV=str(pathlib.Path(sys.executable).parent.parent),
        CTXDASK_PROTOCOL="tls",
        CTXDASK_TLS_DIR=str(tls),
        DASK_CONFIG=str(tls / "dask-tls.yaml"),
        CTXDASK_SCHEDULER_HOST="127.0.0.1",
        CTXDASK_SCHEDULER_PORT=str(port),
        CTXDASK_DASHBOARD_PORT=str(dashboard),
        CTXDASK_RUN_DIR=str(run_dir),
        CTXDASK_SCHEDULER_FILE=str(run_dir / "scheduler.json"),
        CTXDASK_LOCAL_DIRECTORY=str(tmp_path / "workers"),
        CTXDASK_NTHREADS="2",
        CTXDASK_STOP_GRACE="5",
        DASK_DISTRIBUTED__LOGGING__DISTRIBUTED="error",
    )
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("# two workers on this machine\n127.0.0.1\nlocalhost\n")
    markers = [str(run_dir), f"127.0.0.1:{port}", str(tmp_path / "workers"), str(scratch)]

    edr = make_images(tmp_path / "edr", IMAGES)
    pairs = write_pairs(tmp_path / "pairs.txt", PAIRS)
    out = tmp_path / "out"
    db = out / "ctxdask-batch.sqlite"
    security = Security(tls_ca_file=str(tls / "ca.pem"), tls_client_cert=str(tls / "node.pem"),
                        tls_client_key=str(tls / "node-key.pem"), require_encryption=True)
    try:
        assert "tls://127.0.0.1" in _script("start-scheduler.sh", env)
        assert "started 2 workers" in _script("start-workers.sh", env, hosts)
        with Client(f"tls://127.0.0.1:{port}", security=security, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
            assert all(addr.startswith("tls://") for addr in client.scheduler_info()["workers"])
            victim_pidfile = sorted(run_dir.glob("worker-*.pid"))[0]
            victim_group = int(victim_pidfile.read_text())

            def kill_one_worker_when_busy():
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    try:
                        busy = query(db, "SELECT count(*) FROM steps WHERE status IN ('running', 'done') "
                                         "AND scope = 'pair'")[0][0]
                    except Exception:  # noqa: BLE001 - the database may not exist yet
                        busy = 0
                    if busy >= 2:
                        os.killpg(victim_group, signal.SIGKILL)  # nanny and worker, no goodbye
                        return
                    time.sleep(0.1)

            killer = threading.Thread(target=kill_one_worker_when_busy)
            killer.start()
            # slow, healthy stand-ins (the ISIS chain) so the kill lands while steps run
            summary = run_batch(pairs, out, source=edr, client=client,
                                recipe=build_recipe(calibration="isis", env={"CTXDASK_STANDIN_SLEEP": "0.3"}),
                                settings={"batch.scratch": str(scratch), "batch.progress": False})
            killer.join()
            assert len(client.scheduler_info()["workers"]) == 1  # the victim really died
        assert summary.ok, summary
        assert query(db, "SELECT status, count(*) FROM pairs GROUP BY status") == [("done", len(PAIRS))]
        assert query(db, "SELECT count(*) FROM steps WHERE status != 'done'") == [(0,)]
    finally:
        stopped = subprocess.run([str(CLUSTER / "stop.sh")], env=env, capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    # programs the killed worker had started finish (they are short); nothing else may remain
    deadline = time.monotonic() + 30
    while _deployment_processes(markers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _deployment_processes(markers) == []
    assert list(run_dir.glob("*.pid")) == []
