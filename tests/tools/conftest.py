"""Fixtures for the external-tool tests: stand-in programs on PATH, tiny EDRs."""

from __future__ import annotations

import os
import pathlib
import sys

import psutil
import pytest

STANDINS = pathlib.Path(__file__).resolve().parents[1] / "standins"
PROGRAMS = ["mroctx2isis", "spiceinit", "ctxcal", "ctxevenodd", "cam2map4stereo.py",
            "parallel_stereo", "point2dem", "pc_align", "dem_geoid"]


def standin_path() -> str:
    """PATH with the stand-ins first and this interpreter's bin dir (for their shebang)."""
    return os.pathsep.join([str(STANDINS), os.path.dirname(sys.executable), os.environ.get("PATH", "")])


@pytest.fixture(autouse=True)
def isis_calibration(monkeypatch):
    """These tests follow the ISIS programs' chain through the stand-ins (the default is native).

    Set for this process and, through the environment, for the drivers tests start.
    """
    import dask

    monkeypatch.setenv("DASK_CTXDASK__TOOLS__CALIBRATION", "isis")
    with dask.config.set({"ctxdask.tools.calibration": "isis"}):
        yield


@pytest.fixture
def standins(monkeypatch):
    """Put the stand-in programs first on PATH and clear any requested fault."""
    monkeypatch.setenv("PATH", standin_path())
    for var in ("CTXDASK_STANDIN_FAULT", "CTXDASK_STANDIN_FAULT_PROGRAMS", "CTXDASK_STANDIN_SLEEP",
                "CTXDASK_STANDIN_PIDFILE", "CTXDASK_STANDIN_CALLS"):
        monkeypatch.delenv(var, raising=False)
    return STANDINS


def write_edr(path: pathlib.Path, product_id: str, summing: int = 1, lines: int = 8) -> pathlib.Path:
    """Write a small valid PDS3 CTX EDR (what ISIS ``mroctx2isis`` accepts): ``lines`` x 128 raw."""
    from ctxdask.testing import make_edr

    return make_edr(path, lines=lines, line_samples=128, summing=summing, product_id=product_id)


@pytest.fixture
def edr_pair(tmp_path):
    """Two tiny EDRs: (left id, left path, right id, right path)."""
    d = tmp_path / "edr"
    d.mkdir()
    left, right = "P02_001981_1823_XI_02N356W", "P03_002258_1817_XI_01N356W"
    return (left, write_edr(d / f"{left}.IMG", left), right, write_edr(d / f"{right}.IMG", right))


def standin_pids(pidfile: pathlib.Path) -> dict[str, int]:
    """``{role: pid}`` the stand-ins recorded (``CTXDASK_STANDIN_PIDFILE``); empty before they start."""
    if not pidfile.exists():
        return {}
    return {role: int(pid) for role, pid in (ln.split() for ln in pidfile.read_text().splitlines() if ln.strip())}


def group_alive(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    out = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.info["pid"]) == pgid:
                out.append(proc.info["pid"])
        except (ProcessLookupError, PermissionError):
            pass
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The configuration matrix's inputs (tests/tools/matrix.py: cubes, low-resolution DEMs), made
    once per test module."""
    from .matrix import make_inputs

    return make_inputs(tmp_path_factory)
