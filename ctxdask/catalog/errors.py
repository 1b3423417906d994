"""Errors of the catalog: index tables, product lookup and downloads.

All derive from :class:`ctxdask.exceptions.CTXError` (so the CLI prints them as
one clear line) and from the closest built-in exception.
"""

from __future__ import annotations

from ctxdask.exceptions import CTXError

__all__ = [
    "CatalogError",
    "IndexFormatError",
    "ProductNotFoundError",
    "AmbiguousProductIdError",
    "DownloadError",
    "VerificationError",
]


class CatalogError(CTXError):
    """Base class of the catalog errors."""


class IndexFormatError(CatalogError, ValueError):
    """A PDS3 index label or table that cannot be read as its label describes."""


class ProductNotFoundError(CatalogError, LookupError):
    """A product id that is not in the index or URL list, or that the server does not have (404)."""


class AmbiguousProductIdError(CatalogError, LookupError):
    """A short id (``PPP_NNNNNN``) that matches several products of the same orbit."""


class DownloadError(CatalogError, OSError):
    """A download that failed for good: retries exhausted, or a permanent HTTP error."""


class VerificationError(DownloadError):
    """A downloaded file that does not verify (label size, CHECKSUM, md5, product id)."""
