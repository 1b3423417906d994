"""Every public function, class and method of ctxdask has a docstring (the API reference shows them).

Public: defined at the top level of a module whose dotted path has no ``_``-prefixed part
(``__init__`` counts as public), or in a public class, with a name not starting with ``_``.
Read from the source (``ast``), so no optional extra has to be installed.
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ctxdask"
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def public_definitions():
    """``(where, has_docstring)`` of every public definition in ``ctxdask``."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if any(p.startswith("_") and p not in ("__init__", "__main__") for p in parts):
            continue
        stack = [(ast.parse(path.read_text(encoding="utf-8")).body, "")]
        while stack:
            body, prefix = stack.pop()
            for node in body:
                if isinstance(node, DEFINITIONS) and not node.name.startswith("_"):
                    yield f"{path.relative_to(ROOT)}:{node.lineno} {prefix}{node.name}", bool(ast.get_docstring(node))
                    if isinstance(node, ast.ClassDef):
                        stack.append((node.body, f"{prefix}{node.name}."))


def test_public_definitions_are_counted():
    found = list(public_definitions())
    assert len(found) > 500  # the walk sees the whole package


def test_every_public_definition_has_a_docstring():
    missing = [where for where, documented in public_definitions() if not documented]
    assert not missing, f"{len(missing)} public definitions without a docstring:\n" + "\n".join(missing)
