"""Selection rules: a small filter language over a batch's images and pairs, compiled to parameterised SQL.

As Spica selects images "from the database" by rules, a scientist writes::

    status = done and grade != fail and manual != fail and snr > 20
    convergence between 15 and 45 and overlap >= 0.5 and left.orbit < 20000
    any.manual = fail or date >= "2010-01-01"

The text is tokenised and parsed into a tree whose leaves name fields from a
fixed table (:data:`IMAGE_FIELDS`, :data:`PAIR_FIELDS`); each field maps to a
SQL expression written here, and every value becomes a ``?`` parameter. Nothing
the user typed is ever pasted into SQL, so there is nothing to inject.

Grammar::

    expr    := term ("or" term)*
    term    := factor ("and" factor)*
    factor  := "not" factor | "(" expr ")" | compare
    compare := FIELD OP value | FIELD "between" value "and" value
             | FIELD ["not"] "in" "(" value ("," value)* ")" | FIELD "is" ["not"] "null"
    OP      := = | != | < | <= | > | >= | like
    value   := NUMBER | "quoted string" | bare-word

On pairs, an image field names both images (``snr > 20``: both images), or one
with ``left.``/``right.``, or either with ``any.``.

Fields
------
images: ``id status grade manual orbit incidence emission phase date lat lon``
and every numeric QA metric of :class:`ctxdask.quality.QualityMetrics`
(``snr``, ``valid_fraction``, ``saturated_fraction``, ``lost_line_count``...).
pairs: ``pair status manual overlap convergence score parallax_height
shadow_tip_distance gsd_ratio``; of the pair's DEM, once home: ``dem_grade`` (its
QA grade), ``dem_valid_fraction``, ``mola_median`` and ``mola_nmad`` (CTX minus
MOLA after alignment, m), ``mola_points``, ``intersection_error`` (median, m),
``tilt`` (m/km), ``ba_initial_px``, ``ba_final_px`` (bundle adjustment's mean
reprojection error before and after, pixels) and ``ba_improvement``
(final/initial); of its tiles (tiled stereo): ``tiles``, ``fallback_tiles``
(made by a fallback parameter set), ``tile_holes`` and ``hedged_tiles``
(a straggler given a duplicate); of its preview pass: ``preview`` (the
verdict, ``pass`` or ``held``), ``preview_valid_fraction``,
``preview_mola_nmad`` and ``preview_intersection_error``; and the image
fields above.

Geometry (incidence, emission, phase, dates, overlap, convergence, screening
scores) comes from the ``image_geometry`` / ``pair_geometry`` tables that
:mod:`ctxdask.tracking.geometry` fills from the pair finder's scores; until
they are imported those fields are NULL and match nothing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

from ctxdask.tracking.grades import CURRENT as _CURRENT_GRADES

__all__ = ["IMAGE_FIELDS", "PAIR_FIELDS", "SelectionError", "Query", "compile_images", "compile_pairs", "parse"]

#: numeric QA metrics (keys of QualityMetrics.to_dict(), minus lists and per-channel values)
METRICS = ("lines", "samples", "summing", "fill_fraction", "saturated_fraction", "valid_fraction",
           "lost_line_count", "lost_line_fraction", "dark_level", "dark_noise", "even_odd_offset",
           "even_odd_relative", "signal", "noise", "snr", "contrast", "haze")

#: image field -> SQL expression; ``{s}`` is the image's alias (i, l or r)
IMAGE_FIELDS: dict[str, str] = {
    "id": "{s}.product_id",
    "status": "{s}.status",
    "grade": "q{s}.grade",
    "manual": "m{s}.value",
    # CTX product ids are normalised (ctxdask.product_id): characters 5-10 are the orbit
    "orbit": "CAST(substr({s}.product_id, 5, 6) AS INTEGER)",
    "incidence": "g{s}.incidence",
    "emission": "g{s}.emission",
    "phase": "g{s}.phase",
    "date": "g{s}.time",
    "lat": "g{s}.center_lat",
    "lon": "g{s}.center_lon",
    **{m: f"json_extract(q{{s}}.metrics, '$.{m}')" for m in METRICS},
}
PAIR_FIELDS: dict[str, str] = {
    "pair": "p.pair_id",
    "status": "p.status",
    "manual": "mp.value",
    "overlap": "pg.iou",
    "convergence": "pg.convergence",
    "score": "pg.score",
    "parallax_height": "pg.parallax_height",
    "shadow_tip_distance": "pg.shadow_tip_distance",
    "gsd_ratio": "pg.gsd_ratio",
    # the pair's DEM and its QA (pair_quality; NULL until the pair's products are home)
    "dem_grade": "pq.grade",
    "dem_valid_fraction": "json_extract(pq.statistics, '$.valid_fraction')",
    "mola_median": "json_extract(pq.qa, '$.after_alignment.median')",
    "mola_nmad": "json_extract(pq.qa, '$.after_alignment.nmad')",
    "mola_points": "json_extract(pq.qa, '$.mola_points.count')",
    "intersection_error": "json_extract(pq.qa, '$.intersection_error.p50')",
    "tilt": "json_extract(pq.qa, '$.tilt.slope_m_per_km')",
    "ba_initial_px": "json_extract(pq.qa, '$.bundle_adjust.initial.mean_px')",
    "ba_final_px": "json_extract(pq.qa, '$.bundle_adjust.final.mean_px')",
    "ba_improvement": "json_extract(pq.qa, '$.bundle_adjust.improvement')",
    # tiled stereo: tiles made by a fallback parameter set, holes, attempts a hedged duplicate superseded
    "tiles": "(SELECT count(*) FROM tiles t WHERE t.pair_id = p.pair_id)",
    "fallback_tiles": "(SELECT count(*) FROM tiles t WHERE t.pair_id = p.pair_id AND t.status = 'done' "
                      "AND t.param_set > 0)",
    "tile_holes": "(SELECT count(*) FROM tiles t WHERE t.pair_id = p.pair_id AND t.status IN ('failed', 'timeout'))",
    "hedged_tiles": "(SELECT count(DISTINCT a.tile_index) FROM tile_attempts a WHERE a.pair_id = p.pair_id "
                    "AND a.status = 'superseded')",
    # the preview pass: its verdict (pass, held) and what its QA measured
    **{name: f"(SELECT {expr} FROM previews v WHERE v.pair_id = p.pair_id)" for name, expr in (
        ("preview", "v.verdict"),
        ("preview_valid_fraction", "json_extract(v.metrics, '$.valid_fraction')"),
        ("preview_mola_nmad", "json_extract(v.metrics, '$.after_alignment.nmad')"),
        ("preview_intersection_error", "json_extract(v.metrics, '$.intersection_error.p50')"))},
}
_OPS = ("<=", ">=", "!=", "<>", "=", "<", ">", "like")
_KEYWORDS = {"and", "or", "not", "in", "between", "is", "null"}
_TOKEN = re.compile(r"""
    \s*(?:
      (?P<number>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
    | "(?P<dq>[^"]*)" | '(?P<sq>[^']*)'
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),])
    | (?P<word>[A-Za-z_][A-Za-z0-9_.\-:]*)
    )""", re.VERBOSE)
#: longest filter text accepted (a rule is a line or two, not a document)
MAX_LENGTH = 4000


class SelectionError(ValueError):
    """A filter that cannot be parsed or names an unknown field; the message says where."""


@dataclasses.dataclass(frozen=True)
class Compare:
    """A comparison of the selection language: ``field op values``."""

    field: str
    op: str  # = != < <= > >= like in notin between isnull notnull
    values: tuple


@dataclasses.dataclass(frozen=True)
class BoolOp:
    """``and`` / ``or`` of the selection language over ``items``."""

    op: str  # and, or
    items: tuple


@dataclasses.dataclass(frozen=True)
class Not:
    """``not item`` in the selection language."""

    item: object


def _tokens(text: str) -> list[tuple[str, object]]:
    out, pos, text = [], 0, text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise SelectionError(f"cannot read {text[pos:pos + 20].strip()!r} at character {pos + 1}")
        pos = m.end()
        if m.group("number") is not None:
            number = m.group("number")
            out.append(("value", float(number) if any(c in number for c in ".eE") else int(number)))
        elif m.group("dq") is not None or m.group("sq") is not None:
            out.append(("value", m.group("dq") if m.group("dq") is not None else m.group("sq")))
        elif m.group("op"):
            out.append(("op", "!=" if m.group("op") == "<>" else m.group("op")))
        elif m.group("punct"):
            out.append((m.group("punct"), m.group("punct")))
        else:
            word = m.group("word")
            lower = word.lower()
            if lower == "like":
                out.append(("op", "like"))
            elif lower in _KEYWORDS:
                out.append((lower, lower))
            else:
                out.append(("word", word))
    return out


class _Parser:
    def __init__(self, text: str):
        if len(text) > MAX_LENGTH:
            raise SelectionError(f"the filter is longer than {MAX_LENGTH} characters")
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i][0] if self.i < len(self.tokens) else None

    def take(self, kind: str | None = None) -> tuple[str, object]:
        if self.i >= len(self.tokens):
            raise SelectionError(f"the filter ends early{f' (expected {kind})' if kind else ''}")
        tok = self.tokens[self.i]
        if kind is not None and tok[0] != kind:
            raise SelectionError(f"expected {kind} but found {tok[1]!r} (token {self.i + 1})")
        self.i += 1
        return tok

    def parse(self):
        if not self.tokens:
            return None
        node = self.expr()
        if self.i != len(self.tokens):
            raise SelectionError(f"unexpected {self.tokens[self.i][1]!r} (token {self.i + 1})")
        return node

    def expr(self):
        items = [self.term()]
        while self.peek() == "or":
            self.take()
            items.append(self.term())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def term(self):
        items = [self.factor()]
        while self.peek() == "and":
            self.take()
            items.append(self.factor())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def factor(self):
        if self.peek() == "not":
            self.take()
            return Not(self.factor())
        if self.peek() == "(":
            self.take()
            node = self.expr()
            self.take(")")
            return node
        return self.compare()

    def value(self):
        kind, val = self.take()
        if kind == "value":
            return val
        if kind == "word":  # bare words are strings: done, fail, pass
            return val
        raise SelectionError(f"expected a value but found {val!r} (token {self.i})")

    def compare(self) -> Compare:
        _, field = self.take("word")
        kind = self.peek()
        if kind == "op":
            _, op = self.take()
            if op == "=" and self.peek() == "op" and self.tokens[self.i][1] == "=":
                raise SelectionError(f"'==' after {field!r}: write '=' to compare (as in SQL)")
            return Compare(str(field).lower(), str(op), (self.value(),))
        if kind == "between":
            self.take()
            low = self.value()
            self.take("and")
            return Compare(str(field).lower(), "between", (low, self.value()))
        if kind in ("in", "not"):
            negate = self.take()[0] == "not"
            if negate:
                self.take("in")
            self.take("(")
            values = [self.value()]
            while self.peek() == ",":
                self.take()
                values.append(self.value())
            self.take(")")
            return Compare(str(field).lower(), "notin" if negate else "in", tuple(values))
        if kind == "is":
            self.take()
            negate = self.peek() == "not"
            if negate:
                self.take()
            self.take("null")
            return Compare(str(field).lower(), "notnull" if negate else "isnull", ())
        raise SelectionError(f"expected a comparison after {field!r}")


def parse(text: str | None):
    """Parse a filter into its tree (None for an empty filter).

    Raises
    ------
    SelectionError
        The text is not in the language.
    """
    return _Parser(text or "").parse()


def _fields_of(node) -> Iterator[str]:
    if isinstance(node, Compare):
        yield node.field
    elif isinstance(node, BoolOp):
        for item in node.items:
            yield from _fields_of(item)
    elif isinstance(node, Not):
        yield from _fields_of(node.item)


def _condition(expr: str, c: Compare, params: list) -> str:
    if c.op == "isnull":
        return f"{expr} IS NULL"
    if c.op == "notnull":
        return f"{expr} IS NOT NULL"
    params.extend(c.values)
    if c.op == "between":
        return f"{expr} BETWEEN ? AND ?"
    if c.op in ("in", "notin"):
        marks = ", ".join("?" * len(c.values))
        # NOT IN keeps NULLs out, like every other comparison
        return f"{expr} IN ({marks})" if c.op == "in" else f"({expr} IS NOT NULL AND {expr} NOT IN ({marks}))"
    op = {"like": "LIKE", "!=": "IS NOT"}.get(c.op, c.op)
    if c.op == "!=":
        # "manual != fail" should keep images never graded by hand: NULL is "not fail"
        return f"{expr} IS NOT ?"
    return f"{expr} {op} ?"


def _to_sql(node, resolve, params: list) -> str:
    if isinstance(node, BoolOp):
        return "(" + f" {node.op.upper()} ".join(_to_sql(i, resolve, params) for i in node.items) + ")"
    if isinstance(node, Not):
        return f"(NOT coalesce({_to_sql(node.item, resolve, params)}, 0))"
    return resolve(node, params)


@dataclasses.dataclass(frozen=True)
class Query:
    """A compiled selection: ``sql`` (a WHERE clause body) and its ``params``."""

    sql: str
    params: tuple


def _unknown(kind: str, field: str, known, also=()) -> str:
    """The message for an unknown field: the closest known names first, then every known one once."""
    import difflib

    close = difflib.get_close_matches(field, list(dict.fromkeys([*known, *also])), n=3, cutoff=0.75)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    listed = sorted(set(known)) + (["left./right./any.<image field>"] if also else [])
    return f"unknown {kind} field {field!r}{hint}; known: {', '.join(listed)}"


def compile_images(text: str | None) -> Query:
    """Compile a filter over images (alias ``i``, with ``qi``, ``mi``, ``gi`` joined: see :func:`image_from`)."""
    node = parse(text)
    if node is None:
        return Query("1", ())

    def resolve(c: Compare, params: list) -> str:
        if c.field not in IMAGE_FIELDS:
            raise SelectionError(_unknown("image", c.field, IMAGE_FIELDS))
        return _condition(IMAGE_FIELDS[c.field].format(s="i"), c, params)

    params: list = []
    return Query(_to_sql(node, resolve, params), tuple(params))


def compile_pairs(text: str | None) -> Query:
    """Compile a filter over pairs (alias ``p`` with ``pg``, ``mp`` and images ``l``/``r``: :func:`pair_from`)."""
    node = parse(text)
    if node is None:
        return Query("1", ())

    def resolve(c: Compare, params: list) -> str:
        if c.field in PAIR_FIELDS:
            return _condition(PAIR_FIELDS[c.field], c, params)
        side, _, name = c.field.rpartition(".")
        if name not in IMAGE_FIELDS or side not in ("", "left", "right", "any"):
            sides = [f"{s}.{f}" for s in ("left", "right", "any") for f in IMAGE_FIELDS]
            raise SelectionError(_unknown("pair", c.field, [*PAIR_FIELDS, *IMAGE_FIELDS], sides))
        if side in ("left", "right"):
            return _condition(IMAGE_FIELDS[name].format(s=side[0]), c, params)
        both = [_condition(IMAGE_FIELDS[name].format(s=s), c, params) for s in "lr"]
        return f"({both[0]} {'OR' if side == 'any' else 'AND'} {both[1]})"

    params: list = []
    return Query(_to_sql(node, resolve, params), tuple(params))


# ----------------------------------------------------------------------------- FROM clauses
#: the common table expressions image and pair queries join: QA, current manual grades, geometry
WITH_CLAUSE = (f"WITH q AS (SELECT * FROM quality), mg AS ({_CURRENT_GRADES}), "
               "ig AS (SELECT * FROM image_geometry), pgeo AS (SELECT * FROM pair_geometry), "
               "pqa AS (SELECT *, json_extract(qa, '$.grade') AS grade FROM pair_quality)")


def _image_joins(s: str) -> str:
    return (f" LEFT JOIN q q{s} ON q{s}.product_id = {s}.product_id"
            f" LEFT JOIN mg m{s} ON m{s}.subject = {s}.product_id AND m{s}.scope = 'image'"
            f" LEFT JOIN ig g{s} ON g{s}.product_id = {s}.product_id")


def image_from() -> str:
    """FROM clause of image queries (aliases ``i``, ``qi``, ``mi``, ``gi``)."""
    return "FROM images i" + _image_joins("i")


def pair_from() -> str:
    """FROM clause of pair queries (``p``, ``pg``, ``pq``, ``mp``; images ``l``, ``r`` with their joins)."""
    return ("FROM pairs p LEFT JOIN pgeo pg ON pg.pair_id = p.pair_id"
            " LEFT JOIN pqa pq ON pq.pair_id = p.pair_id"
            " LEFT JOIN mg mp ON mp.subject = p.pair_id AND mp.scope = 'pair'"
            " LEFT JOIN images l ON l.product_id = p.left_id" + _image_joins("l") +
            " LEFT JOIN images r ON r.product_id = p.right_id" + _image_joins("r"))


def select_pairs(conn, text: str | None) -> list[tuple[str, str, str]]:
    """``(pair_id, left, right)`` of the pairs matching ``text``, in pair-list order."""
    q = compile_pairs(text)
    sql = (f"{WITH_CLAUSE} SELECT p.pair_id, p.left_id, p.right_id {pair_from()} "
           f"WHERE {q.sql} ORDER BY p.line IS NULL, p.line, p.pair_id")
    return [tuple(r) for r in conn.execute(sql, q.params)]


def pair_list_text(rows, *, where: str, source: str) -> str:
    """The selected pairs as a pair list ``ctxdask batch`` reads (``LEFT RIGHT`` a line, comments above)."""
    head = [f"# ctxdask selection from {source}", f"# where: {' '.join((where or '(all pairs)').split())}",
            f"# {len(rows)} pairs"]
    return "\n".join([*head, *(f"{left} {right}" for _, left, right in rows)]) + "\n"
