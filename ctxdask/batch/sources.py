"""Where a batch gets its EDRs: the fetch step's pluggable sources.

A source is any picklable callable ``source(product_id, scratch) -> path``
that runs on a worker and returns the local path of the product's EDR,
putting anything it has to create (a decompressed copy, a download) under the
folder ``scratch``, which is the fetch step's own work dir. It raises a
:class:`~ctxdask.exceptions.CTXError` when the product cannot be had (the batch
records the image as failed with that message), and ``OSError`` for trouble
that may pass (the batch retries those).

:class:`LocalEDRSource` looks in a folder (``ctxdask batch --edr-dir``);
:class:`CatalogSource` downloads through :func:`ctxdask.catalog.download.fetch`
(verified, resumable, cluster-wide polite) into the catalog cache
(``ctxdask batch --url-list``). A source may offer ``for_product(product_id)``
returning a smaller source for one product; the driver then sends that with
each fetch task instead of the whole source (a URL table of thousands of
products).
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from ctxdask.exceptions import MissingFileError

__all__ = ["CatalogSource", "EDRSource", "LocalEDRSource", "Unavailable", "make_source"]

#: what a fetch step calls on the worker
EDRSource = Callable[[str, str], str]

_OPENERS = {".bz2": bz2.open, ".gz": gzip.open}
_COPY_BLOCK = 8 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class LocalEDRSource:
    """EDRs in a folder: ``<PRODUCT_ID>.IMG`` in any case, optionally ``.bz2``/``.gz``.

    Plain files are used where they are; compressed ones are decompressed
    into the fetch step's scratch folder (temp file + rename, so a killed
    worker never leaves a half-written EDR that looks complete), and reused
    while the compressed file is unchanged.

    Parameters
    ----------
    folder : str
        The folder, as the workers see it (on a LocalCluster: this machine's).
    deadline : float, optional
        Seconds a decompression may take before it gives up (checked between
        blocks), so a stalled network filesystem cannot hold a worker forever.
    """

    folder: str
    deadline: float | None = None

    def find(self, product_id: str) -> str:
        """Path of the product's file (plain or compressed), or :class:`MissingFileError`."""
        folder = os.fspath(self.folder)
        for stem in (product_id.upper(), product_id.lower()):
            for ext in (".IMG", ".img"):
                for comp in ("", ".bz2", ".gz", ".BZ2", ".GZ"):
                    path = os.path.join(folder, stem + ext + comp)
                    if os.path.isfile(path):
                        return path
        # mixed case: fall back to one listing of the folder
        wanted = {f"{product_id}.img".lower() + comp for comp in ("", ".bz2", ".gz")}
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            raise MissingFileError(folder, "EDR folder does not exist (check --edr-dir)") from None
        for name in sorted(names):
            if name.lower() in wanted:
                return os.path.join(folder, name)
        raise MissingFileError(
            os.path.join(folder, f"{product_id}.IMG"),
            f"no EDR for {product_id} in {folder} (looked for {product_id}.IMG in any case, "
            "also .bz2/.gz); put it there or configure a download source",
        )

    def __call__(self, product_id: str, scratch: str) -> str:
        path = self.find(product_id)
        opener = _OPENERS.get(os.path.splitext(path)[1].lower())
        if opener is None:
            return os.path.abspath(path)
        return _decompress(path, opener, os.path.join(scratch, f"{product_id}.IMG"), self.deadline)


def _decompress(source: str, opener, target: str, deadline: float | None) -> str:
    st = os.stat(source)
    identity = {"source": os.path.abspath(source), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    stamp = target + ".source.json"
    try:
        with open(stamp) as f:
            if json.load(f) == identity and os.path.isfile(target):
                return target
    except (OSError, ValueError):
        pass
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = f"{target}.partial-{os.getpid()}"
    t0 = time.monotonic()
    try:
        with opener(source, "rb") as src, open(tmp, "wb") as dst:
            while block := src.read(_COPY_BLOCK):
                dst.write(block)
                if deadline is not None and time.monotonic() - t0 > deadline:
                    raise TimeoutError(f"{source}: decompression took longer than {deadline:g} s")
        os.replace(tmp, target)
    except (EOFError, OSError) as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, (EOFError, gzip.BadGzipFile)) or "Invalid data stream" in str(exc):
            from ctxdask.exceptions import TruncatedFileError

            raise TruncatedFileError(source, f"cannot decompress ({exc}); fetch the file again") from None
        raise
    with open(stamp, "w") as f:
        json.dump(identity, f)
    return target


@dataclasses.dataclass(frozen=True)
class CatalogSource:
    """EDRs downloaded from PDS (or any HTTP server) by the catalog's downloader.

    Parameters
    ----------
    urls : mapping or ProductLocator
        Product id -> URL (e.g. :meth:`ctxdask.catalog.lookup.ProductLocator.from_url_list`).
    cache : str, optional
        Download cache folder on the workers; default the ``catalog`` setting.
    settings : DownloadSettings, optional
        Read on the driver (default: the ``catalog.download`` settings).
    """

    urls: Mapping[str, str] | Any
    cache: str | None = None
    settings: Any = None

    def for_product(self, product_id: str) -> CatalogSource:
        """This source narrowed to one product (what travels with its fetch task)."""
        from ctxdask.catalog.download import DownloadSettings
        from ctxdask.catalog.errors import ProductNotFoundError

        try:
            url = self.urls[product_id]
        except LookupError:  # KeyError of a dict, ProductNotFoundError of a locator
            raise ProductNotFoundError(None, f"{product_id}: not in the URL list") from None
        return CatalogSource({product_id: url}, self.cache, self.settings or DownloadSettings.from_config())

    def __call__(self, product_id: str, scratch: str) -> str:
        from ctxdask.catalog.download import fetch

        return fetch(product_id, locator=dict(self.urls) if isinstance(self.urls, Mapping) else self.urls,
                     cache=self.cache, settings=self.settings).path


@dataclasses.dataclass(frozen=True)
class Unavailable:
    """The source for a product the configured source cannot provide: fails with the reason."""

    reason: str

    def __call__(self, product_id: str, scratch: str) -> str:
        raise MissingFileError(None, self.reason)


def make_source(source: EDRSource | str | os.PathLike | None) -> EDRSource:
    """The source a batch uses: ``source`` itself, or the folder of EDRs it names.

    Raises
    ------
    ValueError
        No source is given.
    """
    if source is None:
        raise ValueError("no EDR source: give --edr-dir (a folder of EDRs) or a download source")
    if isinstance(source, (str, os.PathLike)):
        return LocalEDRSource(os.path.abspath(os.fspath(source)))
    return source
