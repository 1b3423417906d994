"""The notebooks in ``notebooks/``: committed without outputs, and they run top to bottom.

Each is executed with nbclient in a kernel of this interpreter (a kernelspec
written to a temporary JUPYTER_PATH, so no other installed ``python3`` kernel
is picked up), with matplotlib's Agg backend, on the sample data it makes.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is in the test extra: pip install -e '.[test]'")
nbclient = pytest.importorskip("nbclient", reason="nbclient is in the test extra: pip install -e '.[test]'")
pytest.importorskip("ipykernel", reason="ipykernel is in the test extra: pip install -e '.[test]'")

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
#: each notebook must finish well within this (seconds); the cell timeout is the hard stop
BUDGET = 60


def test_the_notebooks_are_there():
    assert [p.name for p in NOTEBOOKS] == ["01_explore_edr.ipynb", "02_batch_monitor.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} keep outputs; clear them before committing"
    assert "widgets" not in nb.metadata


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """A kernelspec named ``ctxdask-test`` running this interpreter; Agg plots; a scratch cwd."""
    spec = tmp_path / "jupyter" / "kernels" / "ctxdask-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ctxdask test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' sample data goes here
    monkeypatch.delenv("CTXDASK_SCHEDULER", raising=False)  # 02 must start its own LocalCluster
    work = tmp_path / "cwd"
    work.mkdir()
    return "ctxdask-test", work


@pytest.mark.slow
@pytest.mark.timeout(3 * BUDGET)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom(path, kernel):
    name, work = kernel
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name=name, timeout=2 * BUDGET, allow_errors=False,
                                     resources={"metadata": {"path": str(work)}})
    start = time.monotonic()
    client.execute()  # raises CellExecutionError with the cell and traceback on any error
    elapsed = time.monotonic() - start
    assert elapsed < BUDGET, f"{path.name} took {elapsed:.0f} s; keep the sample data small"
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") + json.dumps(o.get("data", {})) for o in outputs)
    if path.stem.startswith("01"):
        assert "grade:" in text and "lost_line_count" in text and "history:" in text
    else:
        assert "pairs:" in text and "file://" in text and "crosstab" not in text
