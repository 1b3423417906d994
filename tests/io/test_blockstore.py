"""One task per line block: the zarr writer's graph, its values, and its reads."""

from __future__ import annotations

import logging
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr
from distributed import Client, LocalCluster

import ctxdask
from ctxdask.exceptions import UnityFlatWarning
from ctxdask.io.blockstore import store_by_line_block
from ctxdask.io.zarr import write_zarr
from ctxdask.testing import make_edr

LINES, BLOCK = 200, 64  # four line blocks, the last one short


@pytest.fixture
def edr(tmp_path):
    return make_edr(tmp_path / "B10_013341_1010_XN_79S172W.IMG", lines=LINES, line_samples=256, lost_lines=[70])


def _calibrated(edr, even_odd=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnityFlatWarning)
        return ctxdask.calibrate(ctxdask.open_edr(edr, chunks={"line": BLOCK}), units="rate", even_odd=even_odd)


def _targets(tmp_path, sources):
    group = zarr.open_group(tmp_path / "t.zarr", mode="w")
    return {n: group.create_array(n, shape=a.shape, chunks=a.chunksize, dtype=a.dtype) for n, a in sources.items()}


def test_one_task_per_line_block_plus_shared_work(edr, tmp_path):
    cal = _calibrated(edr)
    sources = {n: cal[n].data for n in ("image", "dark", "prefix", "suffix")}
    stored = store_by_line_block(sources, _targets(tmp_path, sources), dict.fromkeys(sources, 0))
    graph = dict(stored.__dask_graph__())
    blocks = [k for k in graph if isinstance(k, tuple) and k[0].startswith("store-lines-")]
    assert sorted(k[1] for k in blocks) == [0, 1, 2, 3]
    # besides the blocks and the final task: only what every block shares (the flat field and
    # sample parity constants, the EDR handle), no per-block read, slice or store task
    others = [k for k in graph if k not in blocks and k != stored.key]
    assert all(not isinstance(k, tuple) or len(k) <= 2 for k in others), others
    assert len(others) <= 4, others
    stored.compute()
    for name, source in sources.items():
        np.testing.assert_array_equal(zarr.open_array(tmp_path / "t.zarr", path=name)[...], source.compute())


def test_each_line_block_is_read_once(edr, tmp_path, raw_reads):
    cal = _calibrated(edr)
    write_zarr(cal, tmp_path / "out.zarr")
    assert sorted(r.length for r in raw_reads) == sorted([BLOCK * 256] * 3 + [(LINES - 3 * BLOCK) * 256])
    back = xr.open_zarr(tmp_path / "out.zarr")
    np.testing.assert_array_equal(back.image.values, cal.image.values)
    np.testing.assert_array_equal(back.prefix.values, cal.prefix.values)
    assert np.isnan(back.image.values[70]).all()


def test_even_odd_offset_is_computed_once_and_stored(edr, tmp_path, raw_reads):
    cal = _calibrated(edr, even_odd=True)
    write_zarr(cal, tmp_path / "out.zarr")
    # ctxevenodd reads the image twice (statistics, then output); a third read would mean the
    # offset was recomputed for its own variable
    assert len(raw_reads) == 2 * 4
    back = xr.open_zarr(tmp_path / "out.zarr")
    assert float(back.even_odd_offset) == float(cal.even_odd_offset) != 0
    np.testing.assert_array_equal(back.image.values, cal.image.values)


def test_differently_chunked_variables_fall_back_to_xarray(edr, tmp_path):
    cal = _calibrated(edr)
    cal = cal.assign(dark=cal.dark.chunk({"line": 50}))
    write_zarr(cal, tmp_path / "out.zarr")
    back = xr.open_zarr(tmp_path / "out.zarr")
    np.testing.assert_array_equal(back.dark.values, cal.dark.values)
    np.testing.assert_array_equal(back.image.values, cal.image.values)


def test_mismatched_inputs_are_refused(tmp_path):
    a, b = da.zeros((10, 4), chunks=(5, 4)), da.zeros((10, 4), chunks=(4, 4))
    targets = _targets(tmp_path, {"a": a, "b": a})
    with pytest.raises(ValueError, match="same chunks along their line axis"):
        store_by_line_block({"a": a, "b": b}, targets, {"a": 0, "b": 0})
    with pytest.raises(ValueError, match="target shape"):
        store_by_line_block({"a": da.zeros((9, 4), chunks=(5, 4))}, targets, {"a": 0})
    with pytest.raises(ValueError, match="target chunks"):  # two tasks would share stored chunks
        store_by_line_block({"a": da.zeros((10, 4), chunks=(2, 4))}, targets, {"a": 0})


@pytest.mark.cluster
def test_blocks_are_stored_by_worker_processes(edr, tmp_path):
    cal = _calibrated(edr, even_odd=True)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster):
        write_zarr(cal, tmp_path / "out.zarr")
    with dask.config.set(scheduler="sync"):
        back = xr.open_zarr(tmp_path / "out.zarr")
        np.testing.assert_array_equal(back.image.values, cal.image.values)
        assert float(back.even_odd_offset) == float(cal.even_odd_offset)
