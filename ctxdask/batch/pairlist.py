"""Stereo-pair lists: ``LEFT RIGHT`` per line, or CSV with a header.

Product ids reach file names and command lines, so every id is checked against
the SIS product-id form (:func:`ctxdask.product_id.normalize_product_id`)
before anything else sees it. A bad line (the ``M`` lines of the real list,
shell metacharacters, path separators, ``..``, a missing or extra field, a pair
of one image with itself) is reported with its line number and skipped;
duplicate pairs (also the same two images in the other order) are dropped,
reported, and the first occurrence wins. Left/right order is kept as written.
A UTF-8 byte-order mark at the start of the file is not part of the first id.
A list with no usable pair at all is an error (:class:`EmptyPairListError`,
raised by :meth:`PairList.require_pairs`) that gives the reasons.

Accepted layouts::

    # comment lines and blank lines are ignored; so is text after " #"
    B01_009855_2626_XN_82N094W B01_010106_2627_XN_82N094W

    left,right,overlap           <- a CSV header names the columns (any case);
    B01_...,B01_...,0.73            without "left"/"right" the first two are used
"""

from __future__ import annotations

import csv
import dataclasses
import os
import pathlib
from collections.abc import Iterable, Iterator

from ctxdask.exceptions import CTXError
from ctxdask.product_id import (
    InvalidProductIdError,
    is_product_id,
    normalize_product_id,
)

__all__ = ["EmptyPairListError", "Pair", "PairList", "Rejected", "parse_pairs", "read_pairs"]

_LEFT_NAMES = ("left", "left_id", "left_product_id", "image1", "stereo1")
_RIGHT_NAMES = ("right", "right_id", "right_product_id", "image2", "stereo2")
_BOM = "\ufeff"
#: rejected lines quoted in the message of an all-rejected list
_SHOWN = 5


class EmptyPairListError(CTXError, ValueError):
    """A pair list without a single usable pair (empty, or every line rejected)."""


@dataclasses.dataclass(frozen=True)
class Pair:
    """One stereo pair as written in the list.

    Attributes
    ----------
    left, right : str
        Upper-case CTX product ids.
    line : int
        1-based line number in the source (0 when built in code).
    """

    left: str
    right: str
    line: int = 0

    @property
    def pair_id(self) -> str:
        """``LEFT-RIGHT``: the pair's name in keys, folders and the database."""
        return f"{self.left}-{self.right}"

    @property
    def images(self) -> tuple[str, str]:
        """The pair's two product ids, ``(left, right)``."""
        return (self.left, self.right)


@dataclasses.dataclass(frozen=True)
class Rejected:
    """A line that was skipped: its number, its text and why."""

    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclasses.dataclass(frozen=True)
class PairList:
    """The usable pairs of a list, in order, and what was skipped.

    Attributes
    ----------
    pairs : tuple of Pair
    rejected : tuple of Rejected
        Bad lines and duplicates.
    source : str
        Where the list came from (a path, or ``"<pairs>"``).
    """

    pairs: tuple[Pair, ...]
    rejected: tuple[Rejected, ...] = ()
    source: str = "<pairs>"

    @property
    def images(self) -> list[str]:
        """Unique product ids in order of first appearance."""
        return list(dict.fromkeys(pid for p in self.pairs for pid in p.images))

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[Pair]:
        return iter(self.pairs)

    def require_pairs(self) -> PairList:
        """Return self when there is at least one pair, else raise :class:`EmptyPairListError`.

        The message names the list and says why each line was skipped (the
        first few), so an all-rejected list is fixed in one go.
        """
        if self.pairs:
            return self
        if not self.rejected:
            raise EmptyPairListError(self.source, "no stereo pairs in the list (it is empty or only comments)")
        reasons = "; ".join(str(r) for r in self.rejected[:_SHOWN])
        more = f" (and {len(self.rejected) - _SHOWN} more)" if len(self.rejected) > _SHOWN else ""
        raise EmptyPairListError(self.source, f"no usable stereo pair: all {len(self.rejected)} lines were "
                                              f"rejected: {reasons}{more}")

    def __repr__(self) -> str:
        return (f"<PairList {self.source}: {len(self.pairs)} pairs, {len(self.images)} images, "
                f"{len(self.rejected)} lines skipped>")


def _strip_comment(text: str) -> str:
    if text.lstrip().startswith("#"):
        return ""
    # an inline comment needs white space before '#', so a '#' inside a bad id
    # still reaches validation and is reported
    for sep in (" #", "\t#"):
        text = text.split(sep, 1)[0]
    return text.strip()


def _fields(text: str, csv_mode: bool) -> list[str]:
    if csv_mode:
        return [f.strip() for f in next(csv.reader([text]))]
    return text.split()


def _header_columns(fields: list[str]) -> tuple[int, int] | None:
    """Column indexes of left/right when ``fields`` is a header row, else None."""
    lower = [f.lower() for f in fields]
    if any(_is_id(f) for f in fields):
        return None
    left = next((lower.index(n) for n in _LEFT_NAMES if n in lower), 0)
    right = next((lower.index(n) for n in _RIGHT_NAMES if n in lower), 1)
    return left, right


def _is_id(text: str) -> bool:
    return is_product_id(text.strip())


class _Collector:
    """Validates candidate pairs one at a time, keeping order and dropping duplicates."""

    def __init__(self, source: str):
        self.source = source
        self.pairs: list[Pair] = []
        self.rejected: list[Rejected] = []
        self.seen: dict[frozenset, int] = {}

    def reject(self, number: int, text: str, reason: str) -> None:
        self.rejected.append(Rejected(number, text, reason))

    def add(self, number: int, text: str, left: str, right: str) -> None:
        where = f"{self.source}, line {number}"
        try:
            left = normalize_product_id(left, source=where)
            right = normalize_product_id(right, source=where)
        except InvalidProductIdError as exc:
            return self.reject(number, text, exc.reason)
        if left == right:
            return self.reject(number, text, f"a pair needs two different images, got {left} twice")
        both = frozenset((left, right))
        if both in self.seen:
            return self.reject(number, text, f"duplicate of the pair on line {self.seen[both]}")
        self.seen[both] = number
        self.pairs.append(Pair(left, right, number))

    def result(self) -> PairList:
        return PairList(tuple(self.pairs), tuple(self.rejected), self.source)


def parse_pairs(lines: Iterable[str], source: str = "<pairs>") -> PairList:
    """Parse pair-list lines (see the module docstring for the layouts).

    Parameters
    ----------
    lines : iterable of str
        The text, line by line.
    source : str
        Name used in messages.

    Returns
    -------
    PairList
    """
    out = _Collector(source)
    csv_mode: bool | None = None
    columns = (0, 1)
    for number, raw in enumerate(lines, start=1):
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM):]  # a byte-order mark (a Windows editor's UTF-8), not text
        text = _strip_comment(raw.rstrip("\r\n"))
        if not text:
            continue
        if csv_mode is None:
            # the first data line decides the layout, and may be a CSV header
            csv_mode = "," in text
            header = _header_columns(_fields(text, csv_mode)) if csv_mode else None
            if header is not None:
                columns = header
                continue
        fields = _fields(text, csv_mode)
        if not csv_mode and len(fields) != 2:
            out.reject(number, text, f"expected two product ids, found {len(fields)} fields")
        elif csv_mode and len(fields) <= max(columns):
            out.reject(number, text, f"expected at least {max(columns) + 1} columns")
        else:
            out.add(number, text, fields[columns[0]], fields[columns[1]])
    return out.result()


def read_pairs(
    source: str | os.PathLike | Iterable[tuple[str, str]] | PairList,
) -> PairList:
    """Read a pair list from a file, or check pairs given in code.

    Parameters
    ----------
    source : path, PairList, or iterable of (left, right)
        A file in one of the accepted layouts; a :class:`PairList` (returned
        as is); or pairs built in a notebook, validated like file lines
        (their "line numbers" count from 1).

    Returns
    -------
    PairList

    Examples
    --------
    >>> pl = read_pairs([("B01_009855_2626_XN_82N094W", "b01_010106_2627_xn_82n094w"), ("M", "x")])
    >>> pl.pairs[0].right, str(pl.rejected[0])[:40]
    ('B01_010106_2627_XN_82N094W', "line 2: 'M' is not a CTX product id of t")
    """
    if isinstance(source, PairList):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = pathlib.Path(source)
        # invalid bytes become U+FFFD, which no id contains: the line is rejected, not the file
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
            return parse_pairs(f, source=str(path))
    out = _Collector("<pairs>")
    for number, item in enumerate(source, start=1):
        fields = [str(x) for x in item]
        if len(fields) != 2:
            out.reject(number, repr(item), f"expected (left, right), found {len(fields)} values")
        else:
            out.add(number, " ".join(fields), *fields)
    return out.result()
