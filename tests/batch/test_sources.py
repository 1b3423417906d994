"""EDR sources: a local folder, any case, compressed files."""

from __future__ import annotations

import bz2
import gzip

import pytest

from ctxdask.batch.sources import LocalEDRSource, make_source
from ctxdask.exceptions import MissingFileError, TruncatedFileError
from ctxdask.testing import make_edr

PID = "P02_001981_1823_XI_02N356W"


@pytest.fixture
def edr_bytes(tmp_path):
    return make_edr(tmp_path / "src.IMG", lines=16, line_samples=128).read_bytes()


@pytest.mark.parametrize("name", [f"{PID}.IMG", f"{PID.lower()}.img", "P02_001981_1823_xi_02n356w.Img"])
def test_plain_file_in_any_case_is_used_in_place(tmp_path, edr_bytes, name):
    (tmp_path / "edr").mkdir()
    (tmp_path / "edr" / name).write_bytes(edr_bytes)
    path = LocalEDRSource(str(tmp_path / "edr"))(PID, str(tmp_path / "scratch"))
    assert path == str(tmp_path / "edr" / name)


@pytest.mark.parametrize("ext,compress", [(".IMG.bz2", bz2.compress), (".img.gz", gzip.compress)])
def test_compressed_file_is_decompressed_into_scratch_once(tmp_path, edr_bytes, ext, compress):
    (tmp_path / "edr").mkdir()
    (tmp_path / "edr" / f"{PID}{ext}").write_bytes(compress(edr_bytes))
    source = make_source(tmp_path / "edr")
    path = source(PID, str(tmp_path / "scratch"))
    assert path == str(tmp_path / "scratch" / f"{PID}.IMG")
    assert open(path, "rb").read() == edr_bytes
    mtime = (tmp_path / "scratch" / f"{PID}.IMG").stat().st_mtime_ns
    assert source(PID, str(tmp_path / "scratch")) == path
    assert (tmp_path / "scratch" / f"{PID}.IMG").stat().st_mtime_ns == mtime  # reused
    assert not list((tmp_path / "scratch").glob("*.partial-*"))


def test_missing_and_damaged_files(tmp_path, edr_bytes):
    (tmp_path / "edr").mkdir()
    with pytest.raises(MissingFileError, match="no EDR for"):
        LocalEDRSource(str(tmp_path / "edr"))(PID, str(tmp_path))
    with pytest.raises(MissingFileError, match="does not exist"):
        LocalEDRSource(str(tmp_path / "nope"))(PID, str(tmp_path))
    (tmp_path / "edr" / f"{PID}.IMG.gz").write_bytes(gzip.compress(edr_bytes)[:200])
    with pytest.raises(TruncatedFileError):
        LocalEDRSource(str(tmp_path / "edr"))(PID, str(tmp_path / "scratch"))
    assert not (tmp_path / "scratch" / f"{PID}.IMG").exists()


def test_no_source_is_an_error():
    with pytest.raises(ValueError, match="--edr-dir"):
        make_source(None)


def test_catalog_source_downloads_into_the_cache(tmp_path, http_server):
    from ctxdask.batch.sources import CatalogSource
    from ctxdask.catalog.errors import ProductNotFoundError

    base, www, log = http_server
    data = make_edr(www / f"{PID}.IMG", lines=16, line_samples=128).read_bytes()
    source = CatalogSource({PID: f"{base}/{PID}.IMG", "B10_013341_1010_XN_79S172W": "x"},
                           cache=str(tmp_path / "cache"))
    one = source.for_product(PID)
    assert dict(one.urls) == {PID: f"{base}/{PID}.IMG"}  # only its own URL travels with the task
    path = one(PID, str(tmp_path / "scratch"))
    assert open(path, "rb").read() == data and path.startswith(str(tmp_path / "cache"))
    assert any(method == "GET" for method, _, _ in log)
    with pytest.raises(ProductNotFoundError):
        source.for_product("P01_001473_2479_XI_67N185W")
