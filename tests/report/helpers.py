"""Reading report pages in tests: a tiny DOM of the elements the checks need (stdlib parser)."""

from __future__ import annotations

import html.parser
import pathlib
import shutil
import sqlite3


class Page(html.parser.HTMLParser):
    """Elements of a page as (tag, attrs) in document order, plus the visible text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text_parts: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text_parts.append(data)

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def find(self, tag: str, cls: str | None = None) -> list[dict[str, str | None]]:
        """Attributes of every ``tag`` element (with class ``cls``)."""
        return [a for t, a in self.elements
                if t == tag and (cls is None or cls in (a.get("class") or "").split())]


def copy_batch(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    """A private copy of a batch output folder (the database and the files it names relatively)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("report"))
    return dst


def execute(db: pathlib.Path, sql: str, params=()) -> None:
    """Change a test database (one statement with parameters, or a script without)."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            if params:
                conn.execute(sql, params)
            else:
                conn.executescript(sql)
    finally:
        conn.close()
