"""Execute ``notebooks/*.ipynb`` and store the copies, with their outputs, in ``docs/notebooks/``.

The documentation shows the notebooks as they ran here, so the docs build itself runs
nothing (no kernel, no cluster). Run this after changing a notebook::

    python docs/render_notebooks.py

The build warns (an error under ``-W``) when a copy's cells differ from its source.
Needs the ``notebooks`` extra (nbclient, ipykernel, matplotlib) and the ``batch`` extra.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import tempfile

import nbclient
import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "notebooks"


def render(source: pathlib.Path, kernel: str) -> pathlib.Path:
    """Execute ``source`` in a scratch folder and write the executed copy into ``docs/notebooks``."""
    nb = nbformat.read(source, as_version=4)
    with tempfile.TemporaryDirectory(prefix="ctxdask-docs-nb-") as work:
        nbclient.NotebookClient(nb, kernel_name=kernel, timeout=600, allow_errors=False,
                                resources={"metadata": {"path": work}}).execute()
    nb.metadata.pop("widgets", None)
    target = OUT / source.name
    nbformat.write(nb, target)
    return target


def main() -> int:
    """Render every notebook with a kernel running this interpreter."""
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ctxdask-kernel-") as jupyter:
        spec = pathlib.Path(jupyter) / "kernels" / "ctxdask-docs"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "ctxdask docs", "language": "python"}))
        os.environ["JUPYTER_PATH"] = jupyter
        # the kernel's own inline backend: figures become PNG outputs (Agg would show nothing)
        os.environ.pop("MPLBACKEND", None)
        os.environ.pop("CTXDASK_SCHEDULER", None)  # 02 starts its own LocalCluster
        for source in sorted((ROOT / "notebooks").glob("*.ipynb")):
            print("wrote", render(source, "ctxdask-docs").relative_to(ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
