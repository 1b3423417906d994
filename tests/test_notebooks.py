"""The notebooks in ``notebooks/``: committed without outputs, and they run top to bottom.

Each is executed with nbclient in a kernel of this interpreter (a kernelspec
written to a temporary JUPYTER_PATH, so no other installed ``python3`` kernel
is picked up), with matplotlib's Agg backend, on the sample data it makes.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is in the test extra: pip install -e '.[all,test]'")
nbclient = pytest.importorskip("nbclient", reason="nbclient is in the test extra: pip install -e '.[all,test]'")
pytest.importorskip("ipykernel", reason="ipykernel is in the test extra: pip install -e '.[all,test]'")

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
#: seconds a notebook should take (about 30 on an idle 2-core machine); a cell may take twice
#: that, the whole test three times
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


#: cells the test appends to each notebook: they check its figures in the live kernel
CHECKS = {
    "01": """
cbar = image_fig.axes[-1]
assert cbar.get_ylabel() == "I/F", cbar.get_ylabel()
dark_lines = dark_ax.get_lines()
assert len(dark_lines) == 2
for line in dark_lines:  # the lost lines' dark pixels are DN 1, not NaN (no gap in the plot)
    y = np.asarray(line.get_ydata())
    assert np.isfinite(y).all() and (y[600:616] == 1).all() and (y[:600] > 30).all()
print("figure checks passed")
""",
    "02": """
import collections
import numpy as np
bars = [p for p in timeline.patches if p.get_width() > 0]
assert bars
lanes = collections.defaultdict(list)
for bar in bars:
    lanes[round(bar.get_y(), 6), round(bar.get_height(), 6)].append((bar.get_x(), bar.get_x() + bar.get_width()))
for lane, spans in lanes.items():  # within a lane no two steps overlap
    spans.sort()
    assert all(a_end <= b_start + 1e-9 for (_, a_end), (b_start, _) in zip(spans, spans[1:])), (lane, spans)
n_workers = len(timeline.get_yticks())
for bar in bars:  # every bar inside its worker's row
    row = round(bar.get_y() + bar.get_height() / 2)
    assert 0 <= row < n_workers and row - 0.4 <= bar.get_y() and bar.get_y() + bar.get_height() <= row + 0.4
ticks = failures.get_yticks()
assert len(ticks) >= 2 and np.allclose(ticks, np.round(ticks)), ticks
heights = {t.get_text(): p.get_height() for t, p in zip(failures.get_xticklabels(), failures.patches)}
assert heights["validate"] == 1 and sum(heights.values()) == 1, heights
print("figure checks passed")
""",
}


@pytest.mark.slow
@pytest.mark.timeout(3 * BUDGET)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom(path, kernel, tmp_path):
    name, work = kernel
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(CHECKS[path.stem[:2]]))
    client = nbclient.NotebookClient(nb, kernel_name=name, timeout=2 * BUDGET, allow_errors=False,
                                     resources={"metadata": {"path": str(work)}})
    # the cell timeout keeps the sample data small; a wall-clock assertion would fail on a
    # loaded shared machine (speed targets belong in benchmarks/, not in tests)
    client.execute()  # raises CellExecutionError with the cell and traceback on any error
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") + json.dumps(o.get("data", {})) for o in outputs)
    assert "figure checks passed" in text
    # the sample data went into a temporary folder (TMPDIR is tmp_path here) and is gone
    assert re.search(r"removed \S+ -> True", text), text[-2000:]
    assert not list(tmp_path.glob("ctxdask-*")), list(tmp_path.iterdir())
    if path.stem.startswith("01"):
        # the history is printed a step per line, not a character per line
        history = text.split("history:\n", 1)[1].split("still a dask array", 1)[0].splitlines()
        assert [h.split(":")[0].split()[-1] for h in history] == ["open_edr", "decompand", "ctxcal"], history
        assert "dark DN on the lost lines 600-615: [1.] NaN: 0" in text
        assert "image on the lost lines all NaN: True" in text
        assert "grade: warn" in text and "lost_line_fraction" in text
    else:
        assert "pairs:" in text and "file://" in text and "crosstab" not in text
        failed = re.search(r"failed steps: \{[^}]*\}", text)
        assert failed and failed.group() == "failed steps: {'validate': 1}", text[-3000:]
        assert re.search(r"lanes per worker: \{'\d+': \d, '\d+': \d\}", text), text
