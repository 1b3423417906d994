"""The catalog: PDS index tables, product id -> URL, verified downloads, stereo pairs.

* :func:`read_index` / :func:`iter_index` / :func:`open_index`: any PDS3 ASCII
  index table as typed pandas DataFrames, streamed in chunks;
* :class:`ProductLocator`: product id (full or short) -> URL, from an index or a URL list;
* :func:`fetch` / :func:`fetch_many`: polite, resumable, verified downloads into a cache;
* :func:`find_pairs` / :func:`write_pairs`: stereo pairs ranked by overlap and geometry.

Submodules are imported on first use, so ``import ctxdask.catalog`` stays cheap.
"""

from __future__ import annotations

from ctxdask.extras import require

require("batch", "ctxdask.catalog")

import importlib

_LAZY = {
    "Column": "index", "IndexTable": "index", "open_index": "index", "read_index": "index", "iter_index": "index",
    "ProductLocator": "lookup", "product_url": "lookup",
    "DownloadSettings": "download", "FetchResult": "download", "DownloadWarning": "download",
    "cache_dir": "download", "cached_path": "download", "fetch": "download", "fetch_many": "download",
    "fetch_task": "download", "read_md5_manifest": "download",
    "PairCriteria": "pairs", "find_pairs": "pairs", "write_pairs": "pairs",
    "CatalogError": "errors", "IndexFormatError": "errors", "ProductNotFoundError": "errors",
    "AmbiguousProductIdError": "errors", "DownloadError": "errors", "VerificationError": "errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'ctxdask.catalog' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"ctxdask.catalog.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
