"""The batch settings (``ctxdask.batch.*`` in ``ctxdask.yaml``), read once on the driver."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ctxdask import config

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
        b = config.get("batch", {}) or {}
        values: dict[str, Any] = dict(
            retries=int(b.get("retries", 2)),
            timeouts={k: float(v) for k, v in (b.get("timeouts") or {}).items()},
            watchdog_margin=float(b.get("watchdog-margin", 120)),
            deliver=frozenset(b.get("deliver") or ()),
            delivery=str(b.get("delivery", "transfer")),
            chunk_size=int(b.get("chunk-size", cls.chunk_size)),
            chunk_window=int(b.get("chunk-window", 4)),
            delivery_threads=int(b.get("delivery-threads", 2)),
            stall_timeout=float(b.get("stall-timeout", 300)),
            scratch=b.get("scratch"),
            local_workers=b.get("local-workers"),
            local_threads=int(b.get("local-threads", 2)),
            cleanup_scratch=bool(b.get("cleanup-scratch", True)),
            progress=bool(b.get("progress", True)),
            quality=bool(b.get("quality", True)),
        )
        for name, value in overrides.items():
            if value is None:
                continue
            if name == "timeouts":
                value = {**values["timeouts"], **value}
            elif name == "deliver":
                value = frozenset(value)
            values[name] = value
        return cls(**values)
