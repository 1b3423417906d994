"""ctxdask.daskcompat against the oldest and the newest dask that ``pyproject.toml`` allows.

Each run builds a fresh virtual environment with only dask, distributed, numpy
and pytest from the package index, and runs ``tests/test_daskcompat.py`` there
against this source tree. It downloads, so it runs only when asked::

    CTXDASK_DASK_MATRIX=1 python -m pytest -p no:cacheprovider -q tests/test_dask_matrix.py
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import tomllib

import pytest
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("CTXDASK_DASK_MATRIX") != "1", reason="set CTXDASK_DASK_MATRIX=1 (downloads dask)"),
]


def dask_bounds(pyproject: pathlib.Path = ROOT / "pyproject.toml") -> tuple[str, str]:
    """``(lowest allowed, first excluded)`` dask version of the core dependencies.

    Raises
    ------
    ValueError
        When dask is not given as ``dask...>=LOW,<HIGH``, or distributed (in any
        extra) is bounded differently.
    """
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    bounds = {}
    for name in ("dask", "distributed"):
        for requirement in requirements:
            match = re.fullmatch(rf"{name}(\[[\w,]+\])?>=([\d.]+),<([\d.]+)", requirement.replace(" ", ""))
            if match:
                bounds[name] = match.group(2, 3)
    if "dask" not in bounds or bounds.get("distributed", bounds["dask"]) != bounds["dask"]:
        raise ValueError(f"dask and distributed must both be bounded as '>=LOW,<HIGH', the same: {bounds}")
    return bounds["dask"]


def test_dask_bounds_are_read_from_pyproject(tmp_path):
    low, high = dask_bounds()
    assert tuple(map(int, low.split("."))) < tuple(map(int, high.split(".")))
    bad = tmp_path / "pyproject.toml"
    bad.write_text('[project]\ndependencies = ["dask>=2025.1"]\n[project.optional-dependencies]\nx = []\n')
    with pytest.raises(ValueError, match="must both be bounded"):
        dask_bounds(bad)


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("which", ["oldest", "newest"])
def test_daskcompat_on_the_oldest_and_newest_allowed_dask(which, tmp_path):
    low, high = dask_bounds()
    spec = f"=={low}" if which == "oldest" else f">={low},<{high}"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", f"dask[array]{spec}", f"distributed{spec}", "pytest",
                    "pytest-timeout"], check=True)
    versions = subprocess.run([python, "-c", "import dask, distributed; print(dask.__version__, distributed.__version__)"],
                              check=True, capture_output=True, text=True).stdout.split()
    run = subprocess.run(
        [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-o", "addopts=--import-mode=importlib",
         "tests/test_daskcompat.py"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
    )
    print(f"{which}: dask {versions[0]}, distributed {versions[1]}\n{run.stdout[-3000:]}{run.stderr[-3000:]}")
    if which == "oldest":
        assert Version(versions[0]) == Version(versions[1]) == Version(low)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
