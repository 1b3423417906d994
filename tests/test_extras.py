"""The core imports no extra, and a missing extra is one line naming it (library and command line).

``tests/test_install.py`` checks the same in a real plain install; here the
extras are hidden from a subprocess of this environment instead.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tomllib

import pytest

from ctxdask import extras
from ctxdask.cli import _COMMANDS, main

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: what the extras bring that a plain ``import`` of the core must not load (xarray and dask load
#: scipy, psutil, jinja2 and pandas themselves when they are there, so those are not listed)
EXTRA_ONLY = ("starlette", "uvicorn", "multipart", "matplotlib", "rio_cogeo", "pystac", "jsonschema", "shapely",
              "pyproj", "PIL", "distributed", "tqdm", "requests")

#: the modules that open, validate, calibrate and write an EDR
CORE_MODULES = ("ctxdask", "ctxdask.io", "ctxdask.radiometry", "ctxdask.backend", "ctxdask.validation",
                "ctxdask.radiometry.calibrate", "ctxdask.io.isis_write", "ctxdask.io.zarr", "ctxdask.io.geotiff",
                "ctxdask.radiometry.flatbuild", "ctxdask.radiometry.flatio", "ctxdask.radiometry.flatqa",
                "ctxdask.accessor", "ctxdask.testing")


def _python(code: str, hidden: tuple[str, ...] = (), argv: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter of this environment where ``hidden`` cannot be imported."""
    hide = "".join(f"sys.modules[{name!r}] = None\n" for name in hidden)
    return subprocess.run([sys.executable, "-c", f"import sys\n{hide}{code}", *argv], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)


def test_importing_the_core_loads_no_extra():
    result = _python(f"import {', '.join(CORE_MODULES)}\n"
                     f"print(sorted(m for m in {EXTRA_ONLY!r} if m in sys.modules))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_extras_listed_are_those_of_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    assert set(extras.EXTRAS) | {"all"} <= set(optional)
    assert optional["all"] == ["ctxdask[products,batch,web]"]
    core = " ".join(project["dependencies"])
    for modules in extras.EXTRAS.values():
        for module in modules:
            assert module.lower() not in core.lower(), module


def test_require_names_the_extra_and_how_to_install_it(monkeypatch):
    monkeypatch.setitem(extras.EXTRAS, "web", ("starlette", "no_such_module_ctxdask"))
    assert extras.missing("web") == ["no_such_module_ctxdask"]
    assert extras.missing("products") == []
    with pytest.raises(extras.MissingExtraError) as caught:
        extras.require("web", "ctxdask serve")
    assert str(caught.value) == ("ctxdask serve needs the 'web' extra: pip install 'ctxdask[web]' "
                                 "(not installed: no_such_module_ctxdask)")
    assert isinstance(caught.value, ImportError)
    extras.require("products", "anything")  # installed: nothing raised


def test_an_extra_brings_the_ones_it_includes(monkeypatch):
    monkeypatch.setitem(extras.EXTRAS, "products", ("no_such_module_ctxdask",))
    assert extras.missing("web") == ["no_such_module_ctxdask"]
    assert extras.extra_providing("distributed.worker") == "batch"
    assert extras.extra_providing("numpy") is None


def test_a_command_whose_extra_is_missing_says_which(monkeypatch, capsys):
    monkeypatch.delenv("CTXDASK_DEBUG", raising=False)
    monkeypatch.setitem(extras.EXTRAS, "web", ("no_such_module_ctxdask",))
    assert main(["serve", "some/folder", "--port", "0"]) == 1
    assert capsys.readouterr().err == ("ctxdask serve needs the 'web' extra: pip install 'ctxdask[web]' "
                                       "(not installed: no_such_module_ctxdask)\n")


def test_every_command_that_needs_an_extra_names_it():
    assert {name for name, (_, extra, _) in _COMMANDS.items() if extra is None} == {
        "calibrate", "info", "validate", "config", "status", "select"}  # the tracking database needs no extra
    assert _COMMANDS["serve"][1] == "web"


def test_without_the_extras_the_cli_starts_and_refuses_what_needs_them(tmp_path):
    from ctxdask.testing import make_edr

    edr = make_edr(tmp_path / "P01_001472_1747_XI_05S146W.IMG", lines=64)
    hidden = tuple(m for modules in extras.EXTRAS.values() for m in modules)
    code = "from ctxdask.cli import main\nsys.exit(main(sys.argv[1:]))"
    for argv, extra in ((["serve", str(tmp_path)], "web"), (["batch", "pairs.txt", "--out", "x"], "batch"),
                        (["stac", str(tmp_path)], "products")):
        result = _python(code, hidden, tuple(argv))
        assert result.returncode == 1
        assert result.stderr.startswith(f"ctxdask {argv[0]} needs the '{extra}' extra: pip install 'ctxdask[{extra}]'")
        assert result.stderr.count("\n") == 1
    help_text = _python(code, hidden, ("--help",))
    assert help_text.returncode == 0 and "serve" in help_text.stdout
    checked = _python(code, hidden, ("validate", str(edr)))
    assert checked.returncode == 0, checked.stderr
    from ctxdask.tracking import TrackingDB

    TrackingDB(tmp_path / "ctxdask-batch.sqlite").close()
    for argv in (("status", str(tmp_path)), ("select", str(tmp_path)), ("config", "batch.retries")):
        result = _python(code, hidden, argv)
        assert result.returncode == 0, (argv, result.stderr)


def test_a_library_package_that_needs_an_extra_says_which():
    hidden = ("starlette",)
    result = _python("import ctxdask.web", hidden)
    assert result.returncode == 1
    assert "ctxdask.extras.MissingExtraError: ctxdask.web needs the 'web' extra: pip install 'ctxdask[web]'" in (
        result.stderr)
