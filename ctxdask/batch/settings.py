"""The batch settings (``ctxdask.batch.*`` in ``ctxdask.yaml``), read once on the driver."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ctxdask.settings import current as current_settings

__all__ = ["BatchSettings"]


@dataclasses.dataclass(frozen=True)
class BatchSettings:
    """The ``batch`` settings, read once on the driver (see ``ctxdask.yaml``)."""

    retries: int = 2
    timeouts: Mapping[str, float] = dataclasses.field(default_factory=dict)
    watchdog_margin: float = 120.0
    deliver: frozenset[str] = frozenset()
    delivery: str = "transfer"
    chunk_size: int = 8 * 1024 * 1024
    chunk_window: int = 4
    delivery_threads: int = 2
    stall_timeout: float = 300.0
    scratch: str | None = None
    local_workers: int | None = None
    local_threads: int = 2
    cleanup_scratch: bool = True
    progress: bool = True
    quality: bool = True

    @classmethod
    def from_config(cls, **overrides: Any) -> BatchSettings:
        """Read ``ctxdask.batch.*`` now; ``overrides`` (field names, ``None`` ignored) win."""
        b = current_settings().batch
        values: dict[str, Any] = {f.name: getattr(b, f.name) for f in dataclasses.fields(cls)}
        values["deliver"] = frozenset(values["deliver"])
        for name, value in overrides.items():
            if value is None:
                continue
            if name == "timeouts":
                value = {**values["timeouts"], **value}
            elif name == "deliver":
                value = frozenset(value)
            values[name] = value
        return cls(**values)
