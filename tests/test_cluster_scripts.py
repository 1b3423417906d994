"""The deployment files in cluster/: shell scripts, systemd units, TLS setup."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

CLUSTER = pathlib.Path(__file__).resolve().parents[1] / "cluster"
SCRIPTS = sorted(CLUSTER.rglob("*.sh"))


def test_scripts_exist_and_are_executable():
    names = {p.name for p in SCRIPTS}
    assert {"start-scheduler.sh", "start-worker.sh", "start-workers.sh", "stop.sh", "make-certs.sh"} <= names
    for script in SCRIPTS:
        if script.name != "env.sh":  # sourced, not run
            assert os.access(script, os.X_OK), script


def test_current_dask_command_names_only():
    for path in [*SCRIPTS, *CLUSTER.rglob("*.service"), CLUSTER / "README.md"]:
        # the hyphenated commands were removed from distributed ("ctxdask-worker" unit names are fine)
        assert not re.search(r"\bdask-(scheduler|worker|ssh)\b", path.read_text()), path


@pytest.mark.requires_tool("shellcheck")
def test_shellcheck_clean():
    result = subprocess.run(["shellcheck", "-x", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.requires_tool("systemd-analyze")
def test_systemd_units_verify(tmp_path):
    # verify checks that ExecStart exists: point the units at this environment's dask
    dask = pathlib.Path(sys.executable).parent / "dask"
    for unit in (CLUSTER / "systemd").glob("*.service"):
        text = unit.read_text().replace("/opt/ctxdask/venv/bin/dask", str(dask))
        copy = tmp_path / unit.name
        copy.write_text(text)
        result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True)
        problems = [line for line in (result.stdout + result.stderr).splitlines()
                    if unit.name.split("@")[0] in line or "Unknown" in line]
        assert result.returncode == 0 and not problems, result.stdout + result.stderr
        assert "KillMode=control-group" in text


def test_make_certs_produces_a_verifiable_chain(tmp_path):
    tls = tmp_path / "tls"
    subprocess.run([str(CLUSTER / "tls" / "make-certs.sh"), str(tls), "127.0.0.1", "localhost"], check=True,
                   capture_output=True)
    for name in ("ca.pem", "node.pem", "node-key.pem", "dask-tls.yaml"):
        assert (tls / name).is_file()
    assert oct((tls / "node-key.pem").stat().st_mode & 0o777) == "0o600"
    config = (tls / "dask-tls.yaml").read_text()
    assert "require-encryption: true" in config and str(tls / "ca.pem") in config
    text = subprocess.run(["openssl", "x509", "-in", str(tls / "node.pem"), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "IP Address:127.0.0.1" in text and "DNS:localhost" in text


def test_stop_never_signals_a_stale_pid_files_new_owner(tmp_path):
    """A worker killed by the OOM killer leaves its pid file; the kernel may give that pid to another
    user's program leading its own group. stop.sh must not signal that group, and drops the file."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)  # leads its own group, not dask
    try:
        (run_dir / "worker-old.pid").write_text(f"{stranger.pid}\n")
        env = dict(os.environ, CTXDASK_RUN_DIR=str(run_dir), CTXDASK_STOP_GRACE="1")
        result = subprocess.run([str(CLUSTER / "stop.sh"), "workers"], env=env, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stderr
        assert f"pid {stranger.pid} is now another program" in result.stderr
        assert stranger.poll() is None  # still running: never signalled
        assert not (run_dir / "worker-old.pid").exists()
    finally:
        stranger.kill()
        stranger.wait()
