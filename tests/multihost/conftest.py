"""Fixtures of the multi-host tests: a scheduler and three workers that share no filesystem."""

from __future__ import annotations

import pytest

from ctxdask.testing import make_edr

from .harness import MultiHost, base_config, unavailable

IDS = ["P02_001981_1823_XI_02N356W", "P03_002258_1817_XI_01N356W", "B10_013341_1010_XN_79S172W",
       "D10_031011_1864_XI_06N201W"]
#: workers: host name -> loopback address
WORKERS = {"w1": "127.0.0.2", "w2": "127.0.0.3", "w3": "127.0.0.4"}


def tiny_edr(path, product_id):
    """The batch tests' EDR: 16 lines x 128 samples (tests/batch/conftest.py make_images)."""
    make_edr(path, lines=16, line_samples=128)


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
        mh.start_scheduler()
        for name, ip in WORKERS.items():
            mh.start_worker(name, ip)
        mh.serve_edrs(sorted({i for p in pairs for i in p}), tiny_edr)
        mh.write_pairs(pairs)
        return mh

    yield start
    for mh in started:
        mh.close()
