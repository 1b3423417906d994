"""ctxdask.connect, the version check, and the worker plugin that stops programs."""

from __future__ import annotations

import sys
import time

import pytest
from distributed import Client, LocalCluster

from ctxdask import cluster
from ctxdask.tools.processes import is_alive


@pytest.fixture
def local_cluster():
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0") as lc:
        yield lc


@pytest.mark.cluster
def test_connect_by_address_and_env(local_cluster, monkeypatch):
    with cluster.connect(local_cluster.scheduler_address) as client:
        assert len(client.scheduler_info()["workers"]) == 1
    monkeypatch.setenv("CTXDASK_SCHEDULER", local_cluster.scheduler_address)
    with cluster.connect() as client:
        assert client.scheduler.address == local_cluster.scheduler_address


@pytest.mark.cluster
def test_connect_by_scheduler_file(tmp_path):
    import subprocess

    path = tmp_path / "scheduler.json"
    proc = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                             "--port", "0", "--dashboard-address", ":0", "--scheduler-file", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if path.exists() and path.stat().st_size:
                break
            time.sleep(0.1)
        with cluster.connect(scheduler_file=path, check=False) as client:
            assert client.scheduler.address.startswith("tcp://127.0.0.1:")
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.cluster
def test_version_check_passes_on_one_environment(local_cluster):
    with Client(local_cluster) as client:
        seen = cluster.check_versions(client)
    assert set(seen["numpy"].values()) == {__import__("numpy").__version__}
    assert {v for who, v in seen["ctxdask"].items() if who != "scheduler"} == {__import__("ctxdask").__version__}


def test_version_problems_name_package_and_member():
    versions = {
        "client": {"host": {"python": "3.11.7.final.0"}, "packages": {"numpy": "2.4.6", "dask": "2026.8.0"}},
        "scheduler": {"host": {"python": "3.11.7.final.0"}, "packages": {"dask": "2026.8.0"}},
        "workers": {"tcp://10.0.0.2:4000": {"host": {"python": "3.12.1.final.0"},
                                             "packages": {"numpy": "1.26.4", "dask": "2026.8.0"}}},
    }
    problems = cluster.version_problems(cluster.collect_versions(versions, ("python", "numpy", "dask")))
    assert problems == ["python: client 3.11.7.final.0, tcp://10.0.0.2:4000 3.12.1.final.0",
                        "numpy: client 2.4.6, tcp://10.0.0.2:4000 1.26.4"]


@pytest.mark.cluster
def test_plugin_stops_programs_when_worker_closes(tmp_path):
    pidfile = tmp_path / "pid"
    lc = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(lc)
    try:
        client.register_plugin(cluster.StopProgramsOnShutdown(grace=1))
        def start_long_program(pidfile):
            """Run a sleeping program through the runner in a worker thread."""
            import tempfile

            from ctxdask.tools.runner import run

            code = f"import os, time; open({pidfile!r}, 'w').write(str(os.getpid())); time.sleep(300)"
            run([sys.executable, "-c", code], cwd=tempfile.mkdtemp(), timeout=600, cancel=lambda: False, check=False)

        future = client.submit(start_long_program, str(pidfile), pure=False)
        for _ in range(200):
            if pidfile.exists() and pidfile.read_text():
                break
            time.sleep(0.05)
        pid = int(pidfile.read_text())
        assert is_alive(pid)
        del future
        client.close()
        lc.close()  # the worker shuts down gracefully: plugin teardown runs
        for _ in range(100):
            if not is_alive(pid):
                break
            time.sleep(0.1)
        assert not is_alive(pid)
    finally:
        client.close()
        lc.close()
