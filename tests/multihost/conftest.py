"""Fixtures of the multi-host tests: a scheduler and three workers that share no filesystem."""

from __future__ import annotations

import pytest

from .harness import IDS, WORKERS, MultiHost, base_config, unavailable

__all__ = ["IDS", "WORKERS", "multihost"]


@pytest.fixture
def multihost(tmp_path):
    """``start(pairs, tiled=True, env=None) -> MultiHost``: scheduler, three workers, EDRs over HTTP,
    the driver's pair and URL lists; everything it started is stopped at the end."""
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    started = []

    def start(pairs, *, tiled: bool = True, env=None) -> MultiHost:
        mh = MultiHost(tmp_path / "mh", config=base_config(tiled=tiled),
                       env={"CTXDASK_STANDIN_MAP_SIZE": "64x32", **(env or {})})
        started.append(mh)
        return mh.start_all(pairs)

    yield start
    for mh in started:
        mh.close()
