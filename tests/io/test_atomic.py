"""Where a product may be written: one rule for every writer (:func:`ctxdask.io.atomic.check_destination`)."""

from __future__ import annotations

import os
import warnings

import pytest

import ctxdask
from ctxdask.exceptions import OutputPathError, UnityFlatWarning
from ctxdask.io import check_output, write
from ctxdask.io.geotiff import write_geotiff
from ctxdask.io.isis_write import write_isis
from ctxdask.io.zarr import write_zarr
from ctxdask.testing import make_edr

WRITERS = {".cub": write_isis, ".tif": write_geotiff, ".zarr": write_zarr}


@pytest.fixture
def calibrated(tmp_path):
    path = make_edr(tmp_path / "B10_013341_1010_XN_79S172W.IMG", lines=32, line_samples=128)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnityFlatWarning)
        return ctxdask.calibrate(ctxdask.open_edr(path, chunks={"line": 16}), units="rate")


@pytest.mark.parametrize("suffix", sorted(WRITERS))
def test_a_missing_folder_is_refused_by_every_writer_and_entry_point(calibrated, tmp_path, suffix):
    target = tmp_path / "nodir" / "sub" / f"x{suffix}"
    for writer in (write, WRITERS[suffix], check_output):
        args = (target,) if writer is check_output else (calibrated, target)
        with pytest.raises(OutputPathError, match=r"x\.\w+: the folder .*nodir/sub does not exist; create it first"):
            writer(*args)
    assert not (tmp_path / "nodir").exists()  # nothing was created on the way


@pytest.mark.parametrize("suffix", [".cub", ".tif"])
def test_a_folder_where_a_file_goes_is_refused(calibrated, tmp_path, suffix):
    (tmp_path / f"out{suffix}").mkdir()
    with pytest.raises(OutputPathError, match="is an existing folder"):
        write(calibrated, tmp_path / f"out{suffix}")


def test_zarr_replaces_a_store_but_not_other_folders_or_files(calibrated, tmp_path):
    store = write(calibrated, tmp_path / "out.zarr")
    assert write(calibrated, store) == store  # an earlier store: replaced
    (tmp_path / "mine.zarr").mkdir()
    (tmp_path / "mine.zarr" / "notes.txt").write_text("keep me")
    with pytest.raises(OutputPathError, match="not a zarr store"):
        write(calibrated, tmp_path / "mine.zarr")
    assert (tmp_path / "mine.zarr" / "notes.txt").read_text() == "keep me"
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(OutputPathError, match="existing file, not a zarr store"):
        write(calibrated, tmp_path / "file.zarr")


@pytest.mark.parametrize("name, match", [
    ("out.png", "unknown output format '.png'; use .cub"),
    ("out.nc", "unknown output format '.nc'"),
    ("out", "no suffix to choose the format by"),
])
def test_unknown_formats_name_the_path(tmp_path, name, match):
    with pytest.raises(OutputPathError, match=match) as info:
        check_output(tmp_path / name)
    assert str(info.value).startswith(str(tmp_path / name))


def test_a_pipe_or_a_file_in_the_path_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe.cub")
    with pytest.raises(OutputPathError, match="not a regular file"):
        check_output(tmp_path / "pipe.cub")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputPathError, match="afile is a file, not a folder"):
        check_output(tmp_path / "afile" / "x.tif")
