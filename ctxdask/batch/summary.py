"""What a batch run did: :class:`BatchSummary`, returned by :func:`~ctxdask.batch.run_batch`."""

from __future__ import annotations

import dataclasses

from ctxdask.batch.pairlist import Rejected

__all__ = ["BatchSummary"]


@dataclasses.dataclass
class BatchSummary:
    """What a batch run did.

    Attributes
    ----------
    run_id : int
    status : {"done", "interrupted"}
        ``done`` when the run went through its plan (some pairs may have
        failed), ``interrupted`` after Ctrl-C.
    out, database : str
    duration : float
        Seconds.
    planned : int
        Pairs this run worked on.
    already_done : int
        Pairs skipped because an earlier run finished them.
    waiting : int
        Pairs left alone because of an earlier failure (use ``retry_failed``).
    pairs, images : dict
        Status -> count over the whole database after the run.
    rejected : tuple of Rejected
        Pair-list lines that were skipped, and pairs planning failed on.
    failures : list of dict
        Steps that failed, timed out or were interrupted (key, error, log...).
    dashboard : str
    held : tuple of Rejected
        Pairs the planning hook held back, with its reasons.
    """

    run_id: int
    status: str
    out: str
    database: str
    duration: float
    planned: int
    already_done: int
    waiting: int
    pairs: dict[str, int]
    images: dict[str, int]
    rejected: tuple[Rejected, ...]
    failures: list[dict]
    dashboard: str = ""
    held: tuple[Rejected, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every listed pair is done."""
        return self.status == "done" and set(self.pairs) <= {"done"}

    def __str__(self) -> str:
        def fmt(counts):
            return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"

        lines = [
            f"ctxdask batch run {self.run_id}: {self.status} in {self.duration:.1f} s "
            f"({self.planned} pairs worked on, {self.already_done} already done, "
            f"{self.waiting} waiting for --retry-failed)",
            f"  pairs:  {fmt(self.pairs)}",
            f"  images: {fmt(self.images)}",
        ]
        if self.rejected:
            lines.append(f"  {len(self.rejected)} pair-list lines skipped: "
                         + "; ".join(str(r) for r in self.rejected[:5])
                         + (" ..." if len(self.rejected) > 5 else ""))
        if self.held:
            lines.append(f"  {len(self.held)} pairs held back: "
                         + "; ".join(f"{r.text}: {r.reason}" for r in self.held[:5])
                         + (" ..." if len(self.held) > 5 else ""))
        for f in self.failures[:10]:
            first = (f.get("error") or "").strip().splitlines()[:1]
            lines.append(f"  {f['status']:11s} {f['key']}: {first[0] if first else ''}")
        if len(self.failures) > 10:
            lines.append(f"  ... and {len(self.failures) - 10} more (ctxdask status {self.out})")
        lines.append(f"  results: {self.out}")
        lines.append(f"  database: {self.database}")
        return "\n".join(lines)
