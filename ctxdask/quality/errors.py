"""The error quality assessment raises."""

from __future__ import annotations

from ctxdask.exceptions import CTXError

__all__ = ["QualityError"]


class QualityError(CTXError, ValueError):
    """Quality assessment cannot run as asked (wrong input stage, bad thresholds, unreadable DEM)."""
