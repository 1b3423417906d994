"""CTX product identifiers (EDR SIS section 4.1).

Product ids reach file paths, URLs and command lines, so anything that did not
come from a trusted label is checked here first, by ONE function,
:func:`normalize_product_id` (the pair-list check, the recipe's check before
an id reaches argv, catalog look-ups and downloads all call it). The SIS form
is ``PPP_NNNNNN_TTTT_XX_AAHBBBW``: mission sub-phase, orbit (or image number
in cruise), centre latitude code, command mode (``XI`` ITL or ``XN`` NIFL),
planned latitude and west longitude. Case is not significant; ctxdask uses
upper case.

Only ASCII is an id: ``str.isdigit``, ``\\d`` and ``str.upper`` accept far
more (full-width ``００９８５５`` are digits to Python, ``'ﬀ'.upper()`` is
``'FF'``), and such text would pass a check yet make a different file name or
key downstream.
"""

from __future__ import annotations

import re

from ctxdask.exceptions import CTXError

__all__ = ["ABBREVIATED_ID_RE", "InvalidProductIdError", "PRODUCT_ID_RE", "SHORT_ID_RE", "check_product_id",
           "is_product_id", "normalize_product_id"]

#: the full SIS form, e.g. B10_013341_1010_XN_79S172W (ASCII only: no \d, which matches any Unicode digit)
PRODUCT_ID_RE = re.compile(r"[A-Z][A-Z0-9]{2}_[0-9]{6}_[0-9]{4}_X[IN]_[0-9]{2}[NS][0-9]{3}W", re.ASCII)
#: the short form people use in lists, e.g. B01_009855 (phase and orbit only)
SHORT_ID_RE = re.compile(r"[A-Z][A-Z0-9]{2}_[0-9]{6}", re.ASCII)
#: the leading fields of the SIS form, e.g. P02_001981_1823 (the names of ASP's CTX examples)
ABBREVIATED_ID_RE = re.compile(r"[A-Z][A-Z0-9]{2}_[0-9]{6}(_[0-9]{4})?", re.ASCII)
#: white space around an id that is ignored (ASCII only, as str.strip() would also eat U+3000 and friends)
_BLANKS = " \t\r\n\v\f"


class InvalidProductIdError(CTXError, ValueError):
    """A string that is not a CTX product id where one was expected."""


def _candidate(text: str) -> str | None:
    candidate = text.strip(_BLANKS)
    # upper() only on ASCII: on other text it can make ASCII letters out of non-ASCII ones
    return candidate.upper() if candidate.isascii() else None


def is_product_id(text: str) -> bool:
    """True when ``text`` is a full CTX product id (any case, ASCII only)."""
    if not isinstance(text, str):
        return False
    candidate = _candidate(text)
    return candidate is not None and PRODUCT_ID_RE.fullmatch(candidate) is not None


def normalize_product_id(text: str, *, allow_short: bool = False, abbreviated: bool = False,
                         source: str | None = None) -> str:
    """Return the upper-case product id, or raise :class:`InvalidProductIdError`.

    Parameters
    ----------
    text : str
        Candidate id. Surrounding ASCII white space is ignored; nothing else is.
    allow_short : bool
        Also accept the short ``PPP_NNNNNN`` form.
    abbreviated : bool
        Also accept the leading fields ``PPP_NNNNNN`` and ``PPP_NNNNNN_TTTT``
        (names of files and work dirs, as in ASP's CTX examples).
    source : str, optional
        Where the text came from (file and line), for the error message.
    """
    if not isinstance(text, str):
        raise InvalidProductIdError(source, f"product id must be a string, not {type(text).__name__}")
    candidate = _candidate(text)
    if candidate is not None and (PRODUCT_ID_RE.fullmatch(candidate)
                                  or (allow_short and SHORT_ID_RE.fullmatch(candidate))
                                  or (abbreviated and ABBREVIATED_ID_RE.fullmatch(candidate))):
        return candidate
    shown = text if len(text) <= 60 else text[:57] + "..."
    form = "PPP_NNNNNN_TTTT_XX_AAHBBBW (e.g. B10_013341_1010_XN_79S172W)"
    if abbreviated:
        form += " or its leading fields PPP_NNNNNN[_TTTT]"
    elif allow_short:
        form += " or PPP_NNNNNN"
    why = "" if candidate is not None or not text.strip() else " (only ASCII letters and digits)"
    raise InvalidProductIdError(source, f"{shown!r} is not a CTX product id of the form {form}{why}")


def check_product_id(text: str, *, source: str | None = None) -> str:
    """The id exactly as it may reach a file name, key or command line, else raise.

    The same check as :func:`normalize_product_id` (the full form, or its
    leading fields as in ASP's examples), and the id must already be in its
    normal form (upper case, no white space): anything else would make keys
    and folder names that differ from the pair list's.

    Raises
    ------
    InvalidProductIdError
        Also a ``ValueError``.
    """
    normal = normalize_product_id(text, abbreviated=True, source=source)
    if normal != text:
        raise InvalidProductIdError(source, f"{text!r} is not in normal form; use {normal!r}")
    return normal
