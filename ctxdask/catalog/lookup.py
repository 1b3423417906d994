"""Product id -> URL, from a PDS cumulative index or from a plain URL list.

CTX volumes (``MROX_0001`` ... ) end wherever the archive happened to close
them, so a product's volume, and with it its URL, cannot be computed from its
id. The cumulative index knows it: each row has VOLUME_ID and
FILE_SPECIFICATION_NAME, and the URL is ``{base}/{volume_id}/{file}``. Many
people already hold a list of URLs instead (one per line, as written by scrapers
and by the PDS Orbital Data Explorer); :meth:`ProductLocator.from_url_list`
reads that.

Ids are validated (:func:`ctxdask.product_id.normalize_product_id`) before they
reach a URL or a file name, and a FILE_SPECIFICATION_NAME must be a plain
relative path, so a bad index row cannot point a download outside the volume.
A short id (``B01_009855``: phase and orbit) resolves when exactly one product
of that orbit is known; several images per orbit are common, so otherwise the
error lists the candidates.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
import urllib.parse
from collections.abc import Iterable, Mapping

import pandas as pd

from ctxdask.catalog.errors import AmbiguousProductIdError, CatalogError, ProductNotFoundError
from ctxdask.catalog.index import IndexTable, read_index
from ctxdask.pds3 import Label
from ctxdask.product_id import SHORT_ID_RE, InvalidProductIdError, normalize_product_id
from ctxdask.settings import current as current_settings

__all__ = ["ProductLocator", "product_url", "BadLine"]

#: index columns the locator needs
INDEX_COLUMNS = ["VOLUME_ID", "FILE_SPECIFICATION_NAME", "PRODUCT_ID"]
_VOLUME_RE = re.compile(r"[A-Za-z0-9_]{1,32}")
_SAFE_PATH_RE = re.compile(r"[A-Za-z0-9_.\-/]+")


@dataclasses.dataclass(frozen=True)
class BadLine:
    """A line of a URL list that was skipped, and why."""

    line: int
    text: str
    reason: str


def product_url(volume_id: str, file_specification_name: str, *, base: str | None = None,
                lowercase_dirs: bool | None = None) -> str:
    """Build ``{base}/{volume}/{file}`` for one index row.

    Parameters
    ----------
    volume_id : str
        VOLUME_ID, e.g. ``MROX_0001``.
    file_specification_name : str
        FILE_SPECIFICATION_NAME, e.g. ``DATA/T01_000801_1353_XN_44S195W.IMG``.
    base : str, optional
        Root of the volumes; default ``ctxdask.catalog.base-url``.
    lowercase_dirs : bool, optional
        Lower-case the volume and folder names (the PDS Imaging Node serves
        ``mrox_0001/data/`` but keeps file names upper case); default
        ``ctxdask.catalog.lowercase-dirs``.

    Raises
    ------
    CatalogError
        The volume id or file name is not a plain relative name.
    """
    base = (base or current_settings().catalog.base_url).rstrip("/")
    if lowercase_dirs is None:
        lowercase_dirs = current_settings().catalog.lowercase_dirs
    volume = str(volume_id).strip()
    spec = str(file_specification_name).strip().replace("\\", "/")
    if not _VOLUME_RE.fullmatch(volume):
        raise CatalogError(None, f"VOLUME_ID {volume!r} is not a plain volume name")
    parts = spec.split("/")
    if (not _SAFE_PATH_RE.fullmatch(spec) or spec.startswith("/") or any(p in ("", ".", "..") for p in parts)):
        raise CatalogError(None, f"FILE_SPECIFICATION_NAME {spec!r} is not a plain relative path inside a volume")
    if lowercase_dirs:
        volume = volume.lower()
        parts = [p.lower() for p in parts[:-1]] + parts[-1:]
    return "/".join([base, volume, *parts])


class ProductLocator:
    """Find the URL of CTX products by id (full or short form).

    Build one with :meth:`from_index`, :meth:`from_url_list` or
    :meth:`from_mapping`; call :meth:`url` (or index it like a dict).

    Examples
    --------
    >>> loc = ProductLocator.from_mapping({"B01_009855_2626_XN_82N094W": "https://example.org/a.IMG"})
    >>> loc.url("b01_009855")
    'https://example.org/a.IMG'
    """

    def __init__(self, urls: Mapping[str, str], *, source: str | None = None,
                 skipped: Iterable[BadLine] = ()):
        self._urls = dict(urls)
        self.source = source
        #: lines of the source that were not usable (URL lists only)
        self.skipped: list[BadLine] = list(skipped)
        self._by_short: dict[str, list[str]] = {}
        for pid in self._urls:
            self._by_short.setdefault(pid[:10], []).append(pid)

    # -- construction --------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, urls: Mapping[str, str], *, source: str | None = None) -> ProductLocator:
        """From ``{product id: url}``; every id is validated."""
        return cls({normalize_product_id(k, source=source): str(v) for k, v in urls.items()}, source=source)

    @classmethod
    def from_index(
        cls,
        index: str | os.PathLike | Label | IndexTable | pd.DataFrame,
        *,
        base: str | None = None,
        lowercase_dirs: bool | None = None,
        storage_options: dict | None = None,
    ) -> ProductLocator:
        """From a PDS index: a label path/URL, an :class:`IndexTable`, or a DataFrame.

        The DataFrame needs VOLUME_ID, FILE_SPECIFICATION_NAME and PRODUCT_ID.
        Rows whose id is not a CTX product id (calibration targets have valid
        ids too; other instruments' rows do not) are skipped. When a product
        appears in several rows (a re-delivered volume), the last row wins,
        as in the cumulative index the latest volume is the current one.
        """
        source = None
        if isinstance(index, pd.DataFrame):
            frame = index
        else:
            source = index.label_source if isinstance(index, IndexTable) else (
                index.source if isinstance(index, Label) else os.fspath(index))
            frame = read_index(index, columns=INDEX_COLUMNS, storage_options=storage_options)
        missing = [c for c in INDEX_COLUMNS if c not in frame.columns]
        if missing:
            raise CatalogError(source, f"the index lacks column(s) {', '.join(missing)}; cannot build URLs")
        base = base or current_settings().catalog.base_url
        urls: dict[str, str] = {}
        skipped: list[BadLine] = []
        for row, volume, spec, pid in zip(frame.index, frame["VOLUME_ID"], frame["FILE_SPECIFICATION_NAME"],
                                          frame["PRODUCT_ID"]):
            try:
                pid = normalize_product_id(str(pid))
                urls[pid] = product_url(volume, spec, base=base, lowercase_dirs=lowercase_dirs)
            except (CatalogError, InvalidProductIdError) as exc:
                skipped.append(BadLine(int(row) + 1, f"{pid} {volume} {spec}", exc.reason))
        return cls(urls, source=source, skipped=skipped)

    @classmethod
    def from_url_list(cls, path: str | os.PathLike, *, text: str | None = None) -> ProductLocator:
        """From a text file with one URL per line.

        The product id is the file name's stem (``.../P01_001472_1747_XI_05S146W.IMG``).
        Blank lines and ``#`` comments are ignored; lines that are not an
        http(s)/ftp URL of a CTX product are kept in :attr:`skipped` with their
        line numbers.
        """
        path = os.fspath(path)
        if text is None:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        urls: dict[str, str] = {}
        skipped: list[BadLine] = []
        for number, line in enumerate(text.splitlines(), 1):
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            parsed = urllib.parse.urlsplit(entry)
            if parsed.scheme not in ("http", "https", "ftp") or not parsed.netloc:
                skipped.append(BadLine(number, line, "not an http(s) or ftp URL"))
                continue
            stem = posixpath.splitext(posixpath.basename(urllib.parse.unquote(parsed.path)))[0]
            try:
                pid = normalize_product_id(stem, source=f"{path}:{number}")
            except InvalidProductIdError as exc:
                skipped.append(BadLine(number, line, exc.reason))
                continue
            urls[pid] = entry
        return cls(urls, source=path, skipped=skipped)

    # -- queries -------------------------------------------------------------------------

    def resolve(self, product_id: str) -> str:
        """The full product id for a full or short id.

        Raises
        ------
        InvalidProductIdError
            Not a product id at all.
        ProductNotFoundError
            Not known to this locator.
        AmbiguousProductIdError
            A short id matching several products.
        """
        pid = normalize_product_id(product_id, allow_short=True, source=self.source)
        if SHORT_ID_RE.fullmatch(pid):
            candidates = sorted(self._by_short.get(pid, []))
            if len(candidates) == 1:
                return candidates[0]
            if candidates:
                raise AmbiguousProductIdError(
                    self.source, f"{pid} matches {len(candidates)} products: {', '.join(candidates)}; give the full id"
                )
            raise ProductNotFoundError(self.source, f"no product of orbit {pid} is listed")
        if pid not in self._urls:
            raise ProductNotFoundError(self.source, f"{pid} is not listed; is the index older than the product?")
        return pid

    def url(self, product_id: str) -> str:
        """The URL of a product (full or short id)."""
        return self._urls[self.resolve(product_id)]

    def __getitem__(self, product_id: str) -> str:
        return self.url(product_id)

    def __contains__(self, product_id: object) -> bool:
        try:
            self.resolve(product_id)  # type: ignore[arg-type]
        except (CatalogError, InvalidProductIdError):
            return False
        return True

    def __len__(self) -> int:
        return len(self._urls)

    def __iter__(self):
        return iter(self._urls)

    def to_dict(self) -> dict[str, str]:
        """``{product id: url}``, a plain dict that pickles cheaply to workers."""
        return dict(self._urls)

    def __repr__(self) -> str:
        return f"<ProductLocator {len(self)} products from {self.source or 'a mapping'}>"
