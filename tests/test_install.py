"""A plain ``pip install`` (no extras) opens, validates, calibrates and writes an EDR.

It builds a fresh virtual environment and installs this source tree into it
from the package index, so it runs only when asked::

    CTXDASK_INSTALL_CHECK=1 python -m pytest -p no:cacheprovider -q -s tests/test_install.py
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("CTXDASK_INSTALL_CHECK") != "1",
                       reason="set CTXDASK_INSTALL_CHECK=1 (installs ctxdask into a new environment)"),
]

#: what only the extras bring: none of it may be installed, nor loaded by the core
#: (pyproj is not here: rioxarray, a core dependency, requires it)
EXTRA_ONLY = ("starlette", "uvicorn", "matplotlib", "rio_cogeo", "pystac", "shapely", "distributed", "PIL",
              "tqdm", "requests", "jinja2", "psutil", "scipy", "jsonschema")

_SCRIPT = """
import importlib.util, json, pathlib, sys
import ctxdask, ctxdask.io, ctxdask.radiometry
loaded = sorted(m for m in EXTRA_ONLY if m in sys.modules)
installed = sorted(m for m in EXTRA_ONLY if importlib.util.find_spec(m) is not None)
from ctxdask.testing import make_edr
folder = pathlib.Path(sys.argv[1])
edr = make_edr(folder / "P01_001472_1747_XI_05S146W.IMG", lines=256)
ds = ctxdask.open_edr(edr)
report = ctxdask.validate(edr)
iof = ctxdask.calibrate(ds, units="iof", even_odd=True)
for name in ("out.cub", "out.tif", "out.zarr"):
    ctxdask.write(iof, folder / name)
print(json.dumps({"loaded": loaded, "installed": installed, "ok": report.ok,
                  "written": sorted(p.name for p in folder.iterdir() if p.name.startswith("out.")),
                  "iof_factor": float(iof.image.attrs["iof_factor"]),
                  "mean": float(iof.image.mean().compute())}))
""".replace("EXTRA_ONLY", repr(EXTRA_ONLY))


@pytest.mark.timeout(1800)
def test_a_plain_install_opens_validates_calibrates_and_writes(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    python = str(venv / "bin" / "python")
    baseline = subprocess.run([python, "-m", "pip", "list", "--format=freeze"], check=True, capture_output=True,
                              text=True).stdout.splitlines()
    subprocess.run([python, "-m", "pip", "install", "-q", str(ROOT)], check=True, cwd=tmp_path)
    after = subprocess.run([python, "-m", "pip", "list", "--format=freeze"], check=True, capture_output=True,
                           text=True).stdout.splitlines()
    print(f"a plain install adds {len(after) - len(baseline)} packages to a new environment")

    work = tmp_path / "work"
    work.mkdir()
    # run away from the source tree, so the installed copy is what is imported
    run = subprocess.run([python, "-c", _SCRIPT, str(work)], capture_output=True, text=True, cwd=tmp_path,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    print(result)
    assert result["loaded"] == [] and result["installed"] == []
    assert result["ok"] and result["written"] == ["out.cub", "out.tif", "out.zarr"]
    assert result["iof_factor"] > 0 and result["mean"] > 0

    ctxdask = str(venv / "bin" / "ctxdask")
    assert subprocess.run([ctxdask, "--help"], capture_output=True, text=True, cwd=tmp_path).returncode == 0
    serve = subprocess.run([ctxdask, "serve", str(work)], capture_output=True, text=True, cwd=tmp_path)
    assert serve.returncode == 1
    assert serve.stderr.startswith("ctxdask serve needs the 'web' extra: pip install 'ctxdask[web]'")
    assert serve.stderr.count("\n") == 1
    info = subprocess.run([ctxdask, "info", str(work / "P01_001472_1747_XI_05S146W.IMG")], capture_output=True,
                          text=True, cwd=tmp_path)
    assert info.returncode == 0, info.stderr
