"""CTX product identifiers (EDR SIS section 4.1).

Product ids reach file paths, URLs and command lines, so anything that did not
come from a trusted label is checked here first. The SIS form is
``PPP_NNNNNN_TTTT_XX_AAHBBBW``: mission sub-phase, orbit (or image number in
cruise), centre latitude code, command mode (``XI`` ITL or ``XN`` NIFL),
planned latitude and west longitude. Case is not significant; ctxdask uses
upper case.
"""

from __future__ import annotations

import re

from ctxdask.exceptions import CTXError

__all__ = ["InvalidProductIdError", "PRODUCT_ID_RE", "SHORT_ID_RE", "normalize_product_id", "is_product_id"]

#: the full SIS form, e.g. B10_013341_1010_XN_79S172W
PRODUCT_ID_RE = re.compile(r"[A-Z][A-Z0-9]{2}_\d{6}_\d{4}_X[IN]_\d{2}[NS]\d{3}W")
#: the short form people use in lists, e.g. B01_009855 (phase and orbit only)
SHORT_ID_RE = re.compile(r"[A-Z][A-Z0-9]{2}_\d{6}")


class InvalidProductIdError(CTXError, ValueError):
    """A string that is not a CTX product id where one was expected."""


def is_product_id(text: str) -> bool:
    """True when ``text`` is a full CTX product id (any case)."""
    return isinstance(text, str) and PRODUCT_ID_RE.fullmatch(text.upper()) is not None


def normalize_product_id(text: str, *, allow_short: bool = False, source: str | None = None) -> str:
    """Return the upper-case product id, or raise :class:`InvalidProductIdError`.

    Parameters
    ----------
    text : str
        Candidate id. Surrounding white space is ignored; nothing else is.
    allow_short : bool
        Also accept the short ``PPP_NNNNNN`` form.
    source : str, optional
        Where the text came from (file and line), for the error message.
    """
    if not isinstance(text, str):
        raise InvalidProductIdError(source, f"product id must be a string, not {type(text).__name__}")
    candidate = text.strip().upper()
    if PRODUCT_ID_RE.fullmatch(candidate) or (allow_short and SHORT_ID_RE.fullmatch(candidate)):
        return candidate
    shown = text if len(text) <= 60 else text[:57] + "..."
    form = "PPP_NNNNNN_TTTT_XX_AAHBBBW (e.g. B10_013341_1010_XN_79S172W)"
    if allow_short:
        form += " or PPP_NNNNNN"
    raise InvalidProductIdError(source, f"{shown!r} is not a CTX product id of the form {form}")
