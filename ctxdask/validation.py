"""Integrity checks of CTX EDRs: :func:`validate` -> :class:`ValidationReport`.

Where :func:`ctxdask.open_edr` stops at the first problem, validation looks
at everything and reports each finding with a severity:

* ``error``: the product cannot be used as it is (not CTX, damaged label,
  truncated download, illegal values). ``report.ok`` is False.
* ``warning``: usable, but something is off (lost lines, checksum mismatch by
  default, DATA_QUALITY_DESC "ERROR", trailing bytes).
* ``info``: facts worth recording (modes, sizes).

Pixel checks (CHECKSUM, zero-filled lines) stream through the image in line
blocks, so memory stays bounded whatever the image size.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Literal

import numpy as np

from ctxdask.edr import EDRProduct, describe_edr
from ctxdask.exceptions import CTXError, UnsupportedModeError
from ctxdask.settings import current as current_settings

__all__ = ["Finding", "ValidationReport", "validate", "line_ranges"]

Severity = Literal["error", "warning", "info"]

@dataclasses.dataclass(frozen=True)
class Finding:
    """One result of one check."""

    check: str
    severity: Severity
    message: str
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ValidationReport:
    """Everything validation found about one product."""

    path: str
    product_id: str | None = None
    findings: list[Finding] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no finding is an error."""
        return not self.errors

    @property
    def errors(self) -> list[Finding]:
        """The findings of severity ``error``."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        """The findings of severity ``warning``."""
        return [f for f in self.findings if f.severity == "warning"]

    def add(self, check: str, severity: Severity, message: str, **details: Any) -> None:
        """Record a finding."""
        self.findings.append(Finding(check, severity, message, details))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict."""
        return {
            "path": self.path,
            "product_id": self.product_id,
            "ok": self.ok,
            "findings": [dataclasses.asdict(f) for f in self.findings],
        }

    def to_json(self, **kwargs: Any) -> str:
        """The report as JSON."""
        return json.dumps(self.to_dict(), **kwargs)

    def summary(self) -> str:
        """The first error (or "ok"), for one-line displays and databases."""
        if self.ok:
            return "ok" + (f" ({len(self.warnings)} warnings)" if self.warnings else "")
        first = self.errors[0]
        return f"{first.check}: {first.message}"

    def __str__(self) -> str:
        head = f"{self.path}: {'OK' if self.ok else 'INVALID'}"
        if self.product_id:
            head += f" ({self.product_id})"
        rows = [f"  {f.severity.upper():7s} {f.check}: {f.message}" for f in self.findings if f.severity != "info"]
        return "\n".join([head, *rows])


def validate(
    path: str | os.PathLike,
    *,
    checksum: Literal["warn", "reject"] | None = None,
    storage_options: dict | None = None,
    block_lines: int | None = None,
) -> ValidationReport:
    """Check a CTX EDR's label, size, checksum and pixels.

    Parameters
    ----------
    path : str or os.PathLike
        The EDR (or its detached label), local or a URL.
    checksum : {"warn", "reject"}, optional
        What a CHECKSUM mismatch is; default from ``ctxdask.validate.checksum``.
    storage_options : dict, optional
        fsspec options for remote sources.
    block_lines : int, optional
        Lines read at a time; default ``ctxdask.validate.block-lines``.

    Returns
    -------
    ValidationReport
        Never raises for a bad product: every problem becomes a finding.
    """
    path = os.fspath(path)
    checksum = checksum or current_settings().validate.checksum
    if checksum not in ("warn", "reject"):
        raise ValueError(f"checksum must be 'warn' or 'reject', not {checksum!r}")
    block_lines = int(block_lines or current_settings().validate.block_lines)
    report = ValidationReport(path)

    try:
        product = describe_edr(path, storage_options=storage_options, allow_unsupported_mode=True, strict=False)
    except CTXError as exc:
        report.add(_check_name(exc), "error", exc.reason, error=type(exc).__name__)
        return report

    report.product_id = product.product_id or None
    # the structural checks open_edr refuses on (ctxdask.structure), every one of them reported
    for problem in product.problems:
        report.add(problem.check, problem.severity, problem.message, error=problem.error.__name__, **problem.details)
    _check_modes(product, report)
    if report.ok:  # with a structural error the pixels cannot be located reliably
        _check_pixels(product, report, checksum=checksum, block_lines=block_lines)
    return report


def line_ranges(lines: np.ndarray | list[int]) -> list[tuple[int, int]]:
    """Collapse sorted line numbers into inclusive ``(first, last)`` runs."""
    runs: list[tuple[int, int]] = []
    for line in (int(v) for v in lines):
        if runs and line == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], line)
        else:
            runs.append((line, line))
    return runs


# -- checks ---------------------------------------------------------------------------


def _check_name(exc: CTXError) -> str:
    return {
        "MissingFileError": "file",
        "NotAFileError": "file",
        "EmptyFileError": "file",
        "UnreadableFileError": "file",
        "UnreachableURLError": "file",
        "TruncatedFileError": "file-size",
        "NotCTXError": "instrument",
        "UnsupportedModeError": "bit-mode",
        "LabelInconsistentError": "label-values",
    }.get(type(exc).__name__, "label")


def _check_modes(product: EDRProduct, report: ValidationReport) -> None:
    if product.bit_mode != "SQROOT":
        report.add(
            "bit-mode", "warning",
            f"SAMPLE_BIT_MODE_ID {product.bit_mode}: {UnsupportedModeError.__name__}, raw bytes are readable "
            "but the SIS gives no decompanding table (ISIS refuses this mode too)",
        )
    layout = product.layout
    report.add(
        "modes", "info",
        f"{product.lines} lines x {layout.line_samples} samples, summing {layout.summing}, "
        f"first pixel {layout.first_pixel}, {product.bit_mode}",
        lines=product.lines, line_samples=layout.line_samples, summing=layout.summing,
        first_pixel=layout.first_pixel, samples=layout.samples,
    )


def _check_pixels(product: EDRProduct, report: ValidationReport, *, checksum: str, block_lines: int) -> None:
    layout = product.layout
    total = 0
    lost: list[np.ndarray] = []
    zero_pixels = 0
    for start in range(0, product.lines, block_lines):
        stop = min(start + block_lines, product.lines)
        try:
            block = product.read_lines(start, stop)
        except CTXError as exc:
            report.add("file-size", "error", exc.reason)
            return
        total += int(np.sum(block, dtype=np.uint64))
        active = block[:, layout.active_start : layout.active_stop]
        zero = active == 0
        zero_pixels += int(np.count_nonzero(zero))
        lost.append(start + np.flatnonzero(zero.all(axis=1)))
    total %= 2**32

    lost_lines = np.concatenate(lost) if lost else np.array([], dtype=int)
    if lost_lines.size:
        runs = line_ranges(lost_lines)
        shown = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:20])
        more = f" and {len(runs) - 20} more runs" if len(runs) > 20 else ""
        report.add(
            "lost-lines", "warning",
            f"{lost_lines.size} zero-filled (lost) lines: {shown}{more}",
            count=int(lost_lines.size), ranges=[list(r) for r in runs],
        )
    partial = zero_pixels - lost_lines.size * layout.samples
    if partial:
        report.add(
            "zero-pixels", "info", f"{partial} zero (lost-packet) pixels outside whole lost lines", count=partial
        )

    if product.checksum is None:
        report.add("checksum", "warning", "the label has no CHECKSUM; the image bytes cannot be verified")
    elif total != product.checksum:
        severity: Severity = "error" if checksum == "reject" else "warning"
        report.add(
            "checksum", severity,
            f"CHECKSUM mismatch: label 16#{product.checksum:08X}#, image bytes sum to 16#{total:08X}# "
            "(unsigned 32-bit byte sum; the SIS does not define the algorithm)",
            label=product.checksum, computed=total,
        )
    else:
        report.add("checksum", "info", f"CHECKSUM 16#{total:08X}# matches the image bytes")
