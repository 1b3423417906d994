"""The tracking package owns the database: no SQL and no sqlite3 anywhere else in ctxdask.

The scan is the one ``benchmarks/architecture.py`` prints its figures with.
"""

from __future__ import annotations

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _architecture():
    spec = importlib.util.spec_from_file_location("architecture", ROOT / "benchmarks" / "architecture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _outside_tracking() -> list[pathlib.Path]:
    return [p for p in sorted((ROOT / "ctxdask").rglob("*.py")) if "tracking" not in p.relative_to(ROOT).parts]


def test_no_sql_outside_the_tracking_package():
    arch = _architecture()
    found = {p.relative_to(ROOT).as_posix(): n for p in _outside_tracking() if (n := arch.sql_lines(p))}
    assert found == {}


def test_no_sqlite3_outside_the_tracking_package():
    arch = _architecture()
    assert [p.relative_to(ROOT).as_posix() for p in _outside_tracking() if arch.imports_sqlite(p)] == []


def test_the_scan_finds_sql(tmp_path):
    """The check above can fail: a module with a query is counted, its docstring is not."""
    arch = _architecture()
    module = tmp_path / "m.py"
    module.write_text('"""SELECT in a docstring is prose."""\nimport sqlite3\n'
                      'Q = ("SELECT a FROM t "\n     "WHERE b = ?")\nNOT_SQL = "select a colour"\n')
    assert arch.sql_lines(module) == 2 and arch.imports_sqlite(module)
