"""The vocabulary of the tracking database: statuses, grades and scopes, and what each one means.

Every status, grade and scope the database stores is a member of one of these
``StrEnum`` types, so it compares equal to (and is stored as) its text, while
the questions the code asks of it (is it final? a problem? in which order is
it shown?) are answered here and nowhere else.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

__all__ = ["AttemptStatus", "Grade", "Scope", "Status"]


class Status(enum.StrEnum):
    """Where a step, an image, a pair, a tile or a run stands.

    ``done`` is final; ``failed`` and ``timeout`` are final unless a run retries
    failures; the others are redone by the next run.
    """

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"

    @property
    def final(self) -> bool:
        """A plain rerun leaves it alone (``failed``/``timeout`` are redone with ``retry_failed``)."""
        return self in _FINAL

    @property
    def problem(self) -> bool:
        """Something went wrong: listed first wherever statuses are shown."""
        return self in _PROBLEM

    @property
    def ended(self) -> bool:
        """The step came to an end this run keeps (done, failed, timeout or skipped; not interrupted)."""
        return self in _FINAL or self is Status.SKIPPED

    @property
    def in_flight(self) -> bool:
        """Work was handed out and has not come back (a dead driver's leftovers)."""
        return self in (Status.PENDING, Status.RUNNING)

    @property
    def rank(self) -> int:
        """Display order: problems, then unfinished work, then skipped, then done."""
        return _DISPLAY.index(self)

    @classmethod
    def rank_of(cls, text: str | None) -> int:
        """:attr:`rank` of a stored value; an unknown or missing one goes last."""
        return _position(_DISPLAY, text)

    @property
    def severity(self) -> int:
        """How bad, for a subject's status: failed, timeout, interrupted, skipped, running, pending, done."""
        return _SEVERITY.index(self)

    @classmethod
    def severity_of(cls, text: str | None) -> int:
        """:attr:`severity` of a stored value; an unknown or missing one counts as least bad."""
        return _position(_SEVERITY, text)

    @classmethod
    def aggregate(cls, statuses: Iterable[str]) -> Status:
        """The status of an image or pair from those of its steps (``done`` when all are).

        The most severe wins: one failed step makes its subject failed.
        """
        return min((cls(s) for s in statuses), key=lambda s: s.severity, default=cls.DONE)


def _position(order: tuple, text: str | None) -> int:
    """Where ``text`` stands in ``order`` (a tuple of members, which equal their text); after it when absent."""
    return order.index(text) if text in order else len(order)


_FINAL = frozenset({Status.DONE, Status.FAILED, Status.TIMEOUT})
_PROBLEM = (Status.FAILED, Status.TIMEOUT, Status.INTERRUPTED)
_DISPLAY = (*_PROBLEM, Status.RUNNING, Status.PENDING, Status.SKIPPED, Status.DONE)
_SEVERITY = (*_PROBLEM, Status.SKIPPED, Status.RUNNING, Status.PENDING, Status.DONE)


class AttemptStatus(enum.StrEnum):
    """How one attempt at a tile ended: a step's statuses, plus ``lost`` (its worker died) and
    ``superseded`` (a hedged duplicate of it finished first; it was stopped)."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    TIMEOUT = "timeout"
    LOST = "lost"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"
    SUPERSEDED = "superseded"


class Grade(enum.StrEnum):
    """An automatic or manual quality grade."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        """Display order: fail first."""
        return (Grade.FAIL, Grade.WARN, Grade.PASS).index(self)

    @classmethod
    def rank_of(cls, text: str | None) -> int:
        """:attr:`rank` of a stored value; an unknown or missing one goes last."""
        return _position((Grade.FAIL, Grade.WARN, Grade.PASS), text)


class Scope(enum.StrEnum):
    """What a step or a manual grade is about."""

    IMAGE = "image"
    PAIR = "pair"


def sql_list(values: Iterable[str]) -> str:
    """``'a', 'b'``: enum values as SQL literals for ``CHECK``/``IN`` clauses (our constants, never input)."""
    return ", ".join(f"'{v}'" for v in values)
