"""The batch settings (``ctxdask.batch.*`` in ``ctxdask.yaml``), read once on the driver."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ctxdask import config
from ctxdask.settings import current as current_settings

__all__ = ["BatchSettings"]


@dataclasses.dataclass(frozen=True)
@config.defaults_from("batch")
class BatchSettings:
    """The ``batch`` settings, read once on the driver (defaults: ``ctxdask.yaml``)."""

    retries: int
    timeouts: Mapping[str, float]
    watchdog_margin: float
    deliver: frozenset[str] = frozenset()
    delivery: str
    chunk_size: int
    chunk_window: int
    delivery_threads: int
    stall_timeout: float
    scratch: str | None
    local_workers: int | None
    local_threads: int
    cleanup_scratch: bool
    progress: bool
    quality: bool

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
