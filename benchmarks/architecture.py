"""Shape figures of the package: where SQL and settings are read, module sizes, import weight.

Run from a checkout (or point ``--root`` at another one, e.g. an older commit
in a ``git worktree``, for a before/after)::

    python benchmarks/architecture.py [--root PATH]

Prints:

* lines of SQL outside ``ctxdask/tracking`` (string constants with an SQL
  statement keyword; target 0) and modules importing ``sqlite3`` outside it;
* ``config.get(`` calls outside the settings module (target 0);
* settings classes outside the settings model whose fields copy a section of
  ``ctxdask.yaml`` (three or more fields, 70 % of them or more its keys),
  and how many fields they copy (target 0);
* the largest module of ``ctxdask/batch`` (target: about 400 lines at most);
* modules loaded by ``import ctxdask.tracking`` and by ``import ctxdask`` +
  ``ctxdask.io`` (fresh interpreter; ctxdask's and all);
* the number of hard dependencies in ``pyproject.toml``.
"""

from __future__ import annotations

import argparse
import ast
import pathlib
import re
import subprocess
import sys
import tomllib

import yaml

SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE\s+FROM|CREATE\s+(TABLE|INDEX)|ALTER\s+TABLE|PRAGMA|DROP\s+TABLE)\b")
SETTINGS_MODULES = {"ctxdask/config.py", "ctxdask/settings.py"}  # the settings' home before it was a package


def in_settings(rel: str) -> bool:
    return rel in SETTINGS_MODULES or rel.startswith("ctxdask/settings/")


def sql_lines(path: pathlib.Path) -> int:
    """Lines of string constants in ``path`` that hold SQL statement keywords (docstrings left out)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if SQL.search(node.value):
                lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return len(lines)


def imports_sqlite(path: pathlib.Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(a.name == "sqlite3" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "sqlite3":
            return True
    return False


def yaml_sections(root: pathlib.Path) -> dict[str, set[str]]:
    """Dotted section -> its keys (snake case), for every mapping of the checkout's ``ctxdask.yaml``."""
    out: dict[str, set[str]] = {}

    def walk(tree: dict, path: str) -> None:
        out[path] = {str(k).replace("-", "_") for k in tree}
        for key, value in tree.items():
            if isinstance(value, dict):
                walk(value, f"{path}.{key}" if path else str(key))

    walk(yaml.safe_load((root / "ctxdask" / "ctxdask.yaml").read_text())["ctxdask"], "")
    return out


def copied_fields(path: pathlib.Path, sections: dict[str, set[str]]) -> list[tuple[str, str, int]]:
    """``(class, section, fields)`` of each class in ``path`` whose own fields copy a yaml section's keys."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ClassDef):
            continue
        names = {item.target.id for item in node.body if isinstance(item, ast.AnnAssign)
                 and isinstance(item.target, ast.Name) and "ClassVar" not in ast.unparse(item.annotation)}
        if len(names) < 3:
            continue
        # a flattened copy spans several sections: count the keys of all of them it names
        keys = {key for section in sections.values() for key in section}
        best = max(sections, key=lambda k: len(names & sections[k]))
        if len(names & keys) >= 0.7 * len(names) and len(names & sections[best]) >= 3:
            found.append((node.name, best, len(names & keys)))
    return found


def loaded_modules(root: pathlib.Path, statement: str) -> tuple[int, int]:
    """``(ctxdask modules, all modules)`` in ``sys.modules`` after ``statement`` in a fresh interpreter."""
    code = (f"import sys; before = set(sys.modules); {statement}; new = set(sys.modules) - before; "
            "print(sum(m.split('.')[0] == 'ctxdask' for m in new), len(new))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                         env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=300)
    if out.returncode:
        return (-1, -1)
    own, total = out.stdout.split()
    return int(own), int(total)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(pathlib.Path(__file__).resolve().parents[1]),
                        help="a ctxdask checkout (default: this one)")
    args = parser.parse_args(argv)
    root = pathlib.Path(args.root).resolve()
    files = sorted((root / "ctxdask").rglob("*.py"))
    rel = {f: f.relative_to(root).as_posix() for f in files}
    outside = [f for f in files if not rel[f].startswith("ctxdask/tracking/")]
    per_file = {rel[f]: n for f in outside if (n := sql_lines(f))}
    print(f"lines of SQL outside ctxdask/tracking: {sum(per_file.values())}"
          + (f" ({', '.join(f'{k} {v}' for k, v in sorted(per_file.items(), key=lambda kv: -kv[1]))})"
             if per_file else ""))
    sqlite_users = [rel[f] for f in outside if imports_sqlite(f)]
    print(f"modules importing sqlite3 outside ctxdask/tracking: {len(sqlite_users)}"
          + (f" ({', '.join(sqlite_users)})" if sqlite_users else ""))
    gets = {rel[f]: n for f in files if not in_settings(rel[f])
            and (n := f.read_text().count("config.get("))}
    print(f"config.get( calls outside the settings module: {sum(gets.values())} in {len(gets)} modules")
    sections = yaml_sections(root)
    copies = [(rel[f], *c) for f in files if not in_settings(rel[f]) for c in copied_fields(f, sections)]
    print(f"settings classes copying fields of ctxdask.yaml: {len(copies)}, {sum(c[3] for c in copies)} fields"
          + (f" ({', '.join(f'{c[1]} ({c[0]}, {c[3]} of {c[2]})' for c in copies)})" if copies else ""))
    batch = sorted(((len(f.read_text().splitlines()), rel[f]) for f in files if rel[f].startswith("ctxdask/batch/")),
                   reverse=True)
    print(f"largest batch module: {batch[0][1]} {batch[0][0]} lines" if batch else "no batch package")
    for statement in ("import ctxdask.tracking", "import ctxdask, ctxdask.io"):
        if statement == "import ctxdask.tracking" and not (root / "ctxdask" / "tracking").is_dir():
            print(f"modules loaded by `{statement}`: no such package")
            continue
        own, total = loaded_modules(root, statement)
        print(f"modules loaded by `{statement}`: {own} of ctxdask, {total} in all")
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    print(f"hard dependencies in pyproject.toml: {len(project['dependencies'])}; extras: "
          + (", ".join(f"{k} {len(v)}" for k, v in extras.items()) or "none"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
