"""Sphinx configuration of the ctxdask documentation.

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (the ``docs`` extra).
Pages generated from the code (API list, settings keys) are written by ``_ext/ctxdask_docs.py``
when the build starts; the command reference is read from the argparse parsers.
"""

from __future__ import annotations

import os
import pathlib
import sys
import threading
import time
import urllib.request

DOCS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))  # the checkout's ctxdask, installed or not

import ctxdask  # noqa: E402

project = "ctxdask"
author = "the ctxdask developers"
copyright = "the ctxdask developers"
release = version = ctxdask.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",
    "sphinxarg.ext",
    "ctxdask_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "reference/settings-keys.rst", "reference/commands-list.rst"]
templates_path = ["_templates"]
root_doc = "index"
# options and code in prose stay as typed: no -- to en dash, no curly quotes
smartquotes = False

# ----------------------------------------------------------------------------- API
autosummary_generate = True
autosummary_imported_members = False
autodoc_preserve_defaults = True  # a sentinel default shows as written, not as <object object>
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types
autodoc_default_options = {"member-order": "bysource"}
# classes list their members on their own page (_templates/autosummary/class.rst), not in numpydoc tables
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# ----------------------------------------------------------------------------- notebooks
# executed copies with their outputs live in docs/notebooks (docs/render_notebooks.py);
# the build never runs them, so it needs no kernel, no cluster and no ISIS
nb_execution_mode = "off"
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# ----------------------------------------------------------------------------- intersphinx
INVENTORIES = {
    "python": "https://docs.python.org/3",
    "numpy": "https://numpy.org/doc/stable",
    "xarray": "https://docs.xarray.dev/en/stable",
    "dask": "https://docs.dask.org/en/stable",
    "distributed": "https://distributed.dask.org/en/stable",
    "rasterio": "https://rasterio.readthedocs.io/en/stable",
    "pystac": "https://pystac.readthedocs.io/en/stable",
}


def _reachable(url: str, answers: dict, name: str) -> None:
    try:
        with urllib.request.urlopen(f"{url}/objects.inv", timeout=3) as response:
            answers[name] = response.status == 200
    except Exception:  # noqa: BLE001  (any failure: the inventory is not there)
        answers[name] = False


def _probe(inventories: dict[str, str], deadline: float = 5.0) -> dict[str, bool]:
    """Which inventories answer within ``deadline`` seconds, all probed at once.

    Daemon threads: a name lookup that hangs (the socket timeout does not cover DNS) is
    abandoned at the deadline instead of holding the build or its exit.
    """
    answers: dict[str, bool] = {}
    threads = [threading.Thread(target=_reachable, args=(url, answers, name), daemon=True)
               for name, url in inventories.items()]
    for thread in threads:
        thread.start()
    end = time.monotonic() + deadline
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    return {name: answers.get(name, False) for name in inventories}


# Links to other projects' docs need their objects.inv, fetched when the build starts. Where
# those sites cannot be reached (CI reaches only package registries) each failed fetch would be
# a warning, and -W fails the build on it. So each inventory is probed first (all at once, 5 s at
# most) and one that does not answer is left out: its references then render as plain code
# instead of links, and the build says which were left out. CTXDASK_DOCS_INTERSPHINX=all skips
# the probe (a failed fetch is then an error), =none leaves every inventory out.
_choice = os.environ.get("CTXDASK_DOCS_INTERSPHINX", "probe")
if _choice == "none":
    _kept = {}
elif _choice == "all":
    _kept = dict(INVENTORIES)
else:
    _answers = _probe(INVENTORIES)
    _kept = {name: url for name, url in INVENTORIES.items() if _answers[name]}
    if len(_kept) < len(INVENTORIES):
        print("intersphinx: inventories not reachable, links to them left out: "
              + ", ".join(sorted(set(INVENTORIES) - set(_kept))), file=sys.stderr)
intersphinx_mapping = {name: (url, None) for name, url in _kept.items()}

# ----------------------------------------------------------------------------- HTML
html_theme = "pydata_sphinx_theme"
html_title = f"ctxdask {version}"
html_static_path = ["_static"]
html_css_files = ["ctxdask.css"]
html_theme_options = {
    "navbar_align": "left",
    "header_links_before_dropdown": 8,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_context = {"default_mode": "light"}
html_show_sourcelink = False
