"""The ctxdask exception and warning hierarchy.

Every error that ctxdask raises on purpose is a :class:`CTXError`. Subclasses
also derive from the closest built-in exception (``ValueError``,
``FileNotFoundError``, ...) so that generic ``except`` clauses keep working.

Messages follow one pattern: *what* was wrong, *with which file*, and, where
there is one, *what to do*::

    B10_013341_1010_XN_79S172W.IMG: truncated image: the label needs 124,256,256
    bytes but the file has 1,000,000; the download was probably interrupted,
    fetch the product again
"""

from __future__ import annotations

import os

__all__ = [
    "CTXError",
    "CTXWarning",
    "ChecksumError",
    "ChecksumWarning",
    "EmptyFileError",
    "LabelError",
    "LabelInconsistentError",
    "MissingFileError",
    "NotAFileError",
    "NotCTXError",
    "OutputPathError",
    "RecipeError",
    "TruncatedFileError",
    "UnsupportedModeError",
    "UnityFlatWarning",
    "UnreachableURLError",
    "UnreadableFileError",
    "ToolCancelledError",
    "ToolError",
    "ToolFailedError",
    "ToolNotFoundError",
    "ToolTimeoutError",
]


class CTXError(Exception):
    """Base class of every error ctxdask raises on purpose.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The file (or URL) the error is about. It prefixes the message.
    reason : str
        What was wrong, and where possible what to do about it.
    """

    def __init__(self, path: str | os.PathLike | None, reason: str):
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)

    def __reduce__(self):
        # keep the two-argument constructor picklable (errors travel from workers)
        return (type(self), (self.path, self.reason))


class MissingFileError(CTXError, FileNotFoundError):
    """The file (or URL) does not exist."""


class NotAFileError(CTXError, IsADirectoryError):
    """The path exists but is a directory (or another non-regular file)."""


class UnreadableFileError(CTXError, OSError):
    """The file exists but cannot be read: permission denied, a symbolic-link loop, an I/O error."""


class UnreachableURLError(CTXError, ConnectionError):
    """A server could not be reached or refused the request (not a plain "no such file")."""


class OutputPathError(CTXError, ValueError):
    """An output path that cannot be written: unknown format, missing folder, a folder in the way."""


class EmptyFileError(CTXError, ValueError):
    """The file has zero bytes."""


class LabelError(CTXError, ValueError):
    """The PDS3 label is missing, unreadable, or not a label at all."""


class LabelInconsistentError(LabelError):
    """The label parses but its numbers contradict each other or the file."""


class NotCTXError(LabelError):
    """A valid PDS3 product, but not a raw CTX EDR (HiRISE, map-projected, ...)."""


class UnsupportedModeError(CTXError, NotImplementedError):
    """A CTX mode ctxdask (like ISIS) cannot process, such as LIN companding."""


class TruncatedFileError(CTXError, ValueError):
    """The file is shorter than its label says: an interrupted download."""


class ChecksumError(CTXError, ValueError):
    """The label CHECKSUM does not match the image bytes (when configured to reject)."""


class RecipeError(CTXError, ValueError):
    """A recipe whose steps do not fit together: an input no step produces, or steps that wait on each other."""


class ToolError(CTXError, RuntimeError):
    """An external (ISIS/ASP) program could not be run or did not succeed.

    Besides ``path`` and ``reason``, a tool error carries what is known about the
    run, as keyword-only arguments and attributes (``None`` when unknown):
    ``command`` (the argv list), ``returncode``, ``signal`` (the number of the signal
    that ended the program), ``duration`` (seconds), ``log_path`` and ``log_tail``
    (the last lines of the program's log).
    """

    _RUN_FIELDS = ("command", "returncode", "signal", "duration", "log_path", "log_tail")

    def __init__(
        self,
        path: str | os.PathLike | None,
        reason: str,
        *,
        command: list[str] | None = None,
        returncode: int | None = None,
        signal: int | None = None,
        duration: float | None = None,
        log_path: str | os.PathLike | None = None,
        log_tail: str | None = None,
    ):
        super().__init__(path, reason)
        self.command = None if command is None else [os.fspath(a) for a in command]
        self.returncode = returncode
        self.signal = signal
        self.duration = duration
        self.log_path = None if log_path is None else os.fspath(log_path)
        self.log_tail = log_tail

    def __reduce__(self):
        # the run details travel as keyword state, so the error pickles from workers whole
        return (
            _rebuild_tool_error,
            (type(self), self.path, self.reason, {k: getattr(self, k, None) for k in self._RUN_FIELDS}),
        )


def _rebuild_tool_error(cls, path, reason, fields):
    return cls(path, reason, **fields)


class ToolNotFoundError(ToolError, FileNotFoundError):
    """An external program is not on PATH."""


class ToolFailedError(ToolError):
    """An external program exited non-zero or was killed by a signal."""


class ToolTimeoutError(ToolError, TimeoutError):
    """An external program ran past its deadline and its process group was killed."""


class ToolCancelledError(ToolError):
    """An external program was stopped because its task was cancelled."""


class CTXWarning(UserWarning):
    """Base class of ctxdask warnings."""


class ChecksumWarning(CTXWarning):
    """The label CHECKSUM does not match the image bytes (default: warn only)."""


class UnityFlatWarning(CTXWarning):
    """Calibration ran without a flat field; a unity flat was used."""
