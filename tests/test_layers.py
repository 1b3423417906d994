"""The package's layers: a module imports only from its own layer or the ones below.

The import graph is :func:`tests.test_imports.import_graph` (every import
statement, deferred ones too, read with :mod:`ast`). The layers, lowest first:

core
    What opens, validates and describes an EDR, plus what every layer shares:
    the exceptions, the settings, the optional-extra checks (``extras``), the
    dask compatibility module (``daskcompat``), and the format tables (PDS3
    labels, line layout, the companding table). ``testing`` makes spec-conformant
    EDRs from these tables alone, so it sits here too.
dataset
    ``io`` and ``radiometry``, and the xarray face of the data: ``backend``
    (``open_edr``, the ``ctx`` engine) registers the ``ds.ctx`` accessor, which
    forwards to io writers and radiometry, so both sit with them. Inside the
    layer, ``io`` imports none of the others (its format tables are in core).
products
    ``quality``, ``tools`` (external programs), ``catalog`` (PDS indexes,
    downloads, pair finding).
tracking
    The tracking database (``ctxdask.tracking``, being created; empty until then).
batch
    The batch on a dask cluster, and ``cluster`` (``connect``).
views
    ``report`` and ``web``.
commands
    ``commands``, ``cli`` and ``__main__``.
"""

from __future__ import annotations

import pathlib

import pytest

from .test_imports import PACKAGE, import_graph

#: layer name -> module prefixes, lowest layer first (the longest matching prefix places a module)
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("ctxdask", "ctxdask.exceptions", "ctxdask.extras", "ctxdask.daskcompat", "ctxdask.config",
              "ctxdask.settings", "ctxdask.pvltext", "ctxdask.pds3", "ctxdask.filecheck", "ctxdask.rawio", "ctxdask.layout",
              "ctxdask.companding", "ctxdask.structure", "ctxdask.edr", "ctxdask.product_id", "ctxdask.validation",
              "ctxdask.testing", "ctxdask.colours")),
    ("dataset", ("ctxdask.io", "ctxdask.radiometry", "ctxdask.backend", "ctxdask.accessor")),
    ("products", ("ctxdask.quality", "ctxdask.tools", "ctxdask.catalog")),
    ("tracking", ("ctxdask.tracking",)),
    ("batch", ("ctxdask.batch", "ctxdask.cluster")),
    ("views", ("ctxdask.report", "ctxdask.web")),
    ("commands", ("ctxdask.commands", "ctxdask.cli", "ctxdask.__main__")),
]

#: (importer prefix, prefix it must not import) inside a layer
ONE_WAY = [
    ("ctxdask.io", "ctxdask.radiometry"),
    ("ctxdask.io", "ctxdask.backend"),
    ("ctxdask.io", "ctxdask.accessor"),
]

#: modules that import nothing of ctxdask but these: the compatibility and extras checks stay at the bottom
LEAVES = {"ctxdask.daskcompat": set(), "ctxdask.extras": {"ctxdask.exceptions"}, "ctxdask.exceptions": set()}

#: (importer, imported) pairs that break the layers today and are allowed until the code moves.
#: Empty: with report and web above batch, their imports of ctxdask.batch.db/grades/geometry keep the
#: order. Add a pair here only with the reason it is temporary; an entry that no longer breaks the
#: layers fails the test, so the list cannot go stale.
ALLOWED: dict[tuple[str, str], str] = {}


def layer_of(module: str, layers=LAYERS) -> int | None:
    """Index in ``layers`` of the layer holding ``module`` (longest prefix), or None."""
    best = None
    for index, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    return None if best is None else best[0]


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(graph: dict[str, set[str]], layers=LAYERS, one_way=ONE_WAY) -> set[tuple[str, str]]:
    """Every (importer, imported) pair that imports upwards, or against a one-way rule."""
    found = set()
    for importer, targets in graph.items():
        for target in targets:
            if layer_of(target, layers) > layer_of(importer, layers):
                found.add((importer, target))
            elif any(_within(importer, a) and _within(target, b) for a, b in one_way):
                found.add((importer, target))
    return found


def test_the_checker_finds_upward_and_one_way_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "low").mkdir(parents=True)
    (pkg / "high").mkdir()
    for path, text in {"__init__.py": "", "base.py": "", "low/__init__.py": "",
                       "low/a.py": "from pkg.low import b\nfrom pkg import base\n",
                       "low/b.py": "def f():\n    from pkg.high import c\n",
                       "high/__init__.py": "", "high/c.py": "from pkg.low import a\n"}.items():
        (pkg / path).write_text(text)
    layers = [("bottom", ("pkg",)), ("middle", ("pkg.low",)), ("top", ("pkg.high",))]
    graph = import_graph(pkg)
    assert violations(graph, layers, []) == {("pkg.low.b", "pkg.high.c")}
    assert violations(graph, layers, [("pkg.low.a", "pkg.low.b")]) == {("pkg.low.b", "pkg.high.c"),
                                                                        ("pkg.low.a", "pkg.low.b")}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(PACKAGE)


def test_every_module_has_a_layer(graph):
    assert not [m for m in graph if layer_of(m) is None]
    # ctxdask.tracking is placed whether or not it exists yet
    assert layer_of("ctxdask.tracking.db") == [name for name, _ in LAYERS].index("tracking")


def test_modules_import_only_their_own_layer_or_lower(graph):
    found = violations(graph)
    names = [name for name, _ in LAYERS]
    broken = {f"{a} ({names[layer_of(a)]}) imports {b} ({names[layer_of(b)]})" for a, b in found - set(ALLOWED)}
    assert not broken, sorted(broken)
    assert not set(ALLOWED) - found, f"allowed but no longer breaking the layers: {sorted(set(ALLOWED) - found)}"


@pytest.mark.parametrize("module", sorted(LEAVES))
def test_the_bottom_modules_import_almost_nothing_of_ctxdask(graph, module):
    assert graph[module] - {"ctxdask"} <= LEAVES[module]


def test_the_layers_follow_the_package_folders():
    """A new sub-package or top-level module must be placed on purpose (LAYERS), not by the catch-all."""
    placed = {prefix for _, prefixes in LAYERS for prefix in prefixes}
    here = {f"ctxdask.{p.stem}" for p in pathlib.Path(PACKAGE).glob("*.py") if p.stem != "__init__"}
    here |= {f"ctxdask.{p.name}" for p in pathlib.Path(PACKAGE).iterdir() if (p / "__init__.py").exists()}
    assert here <= placed, sorted(here - placed)
