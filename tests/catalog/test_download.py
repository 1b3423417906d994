"""Downloads against a real, misbehaving HTTP server on 127.0.0.1.

Every case ends in a verified file in the cache or a clear error, and never
leaves a bad file in the cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
import warnings

import pytest

from ctxdask.catalog import (
    DownloadError,
    DownloadSettings,
    ProductLocator,
    ProductNotFoundError,
    VerificationError,
    fetch,
    fetch_many,
    read_md5_manifest,
)
from ctxdask.catalog.download import DownloadWarning, cached_path
from ctxdask.validation import validate

PID = "P01_001472_1747_XI_05S146W"


def _serve(server, edr_bytes, pid=PID, data=None):
    return server.add(f"mrox_0001/data/{pid}.IMG", edr_bytes[pid] if data is None else data)


def _name(pid=PID):
    return f"mrox_0001/data/{pid}.IMG"


def _assert_good(result, edr_bytes, cache, pid=PID):
    path = cached_path(pid, cache)
    assert result.path == str(path)
    assert path.read_bytes() == edr_bytes[pid]
    assert validate(path, checksum="reject").ok
    assert not list((cache / ".partial").glob("*.part"))


def _assert_nothing_cached(cache, pid=PID):
    assert not cached_path(pid, cache).exists()
    assert [p.name for p in cache.iterdir() if p.name != ".partial"] == []


def test_clean_download_then_cached(fault_server, edr_bytes, tmp_path, fast_settings):
    url = _serve(fault_server, edr_bytes)
    result = fetch(PID, url=url, cache=tmp_path, settings=fast_settings)
    _assert_good(result, edr_bytes, tmp_path)
    assert not result.cached and result.requests == 1 and result.resumed_bytes == 0
    assert result.md5 == hashlib.md5(edr_bytes[PID]).hexdigest()
    assert fault_server.gets(_name())[0]["user_agent"] == fast_settings.user_agent

    again = fetch(PID, url=url, cache=tmp_path, settings=fast_settings)
    assert again.cached and again.requests == 0
    assert len(fault_server.gets(_name())) == 1  # the cache answered, not the server


def test_503_is_retried_and_retry_after_honoured(fault_server, edr_bytes, tmp_path, fast_settings):
    url = _serve(fault_server, edr_bytes)
    fault_server.plan(_name(), ("503", 1), ("503",))
    settings = dataclasses.replace(fast_settings, backoff_max=0.3)
    started = time.monotonic()
    result = fetch(PID, url=url, cache=tmp_path, settings=settings)
    _assert_good(result, edr_bytes, tmp_path)
    assert result.requests == 3
    gets = fault_server.gets(_name())
    # Retry-After: 1 is honoured up to backoff-max (0.3 s)
    assert gets[1]["time"] - gets[0]["time"] >= 0.29
    assert time.monotonic() - started < 5


def test_dropped_connections_resume_with_range(fault_server, edr_bytes, tmp_path, fast_settings):
    url = _serve(fault_server, edr_bytes)
    fault_server.plan(_name(), ("drop", 50_000), ("drop", 30_000))
    result = fetch(PID, url=url, cache=tmp_path, settings=fast_settings)
    _assert_good(result, edr_bytes, tmp_path)
    gets = fault_server.gets(_name())
    assert len(gets) == 3 and gets[0]["range"] is None
    # each resume starts where the kept bytes end (a chunk cut short by the drop is not kept)
    first, second = (int(g["range"].removeprefix("bytes=").rstrip("-")) for g in gets[1:])
    assert 50_000 - fast_settings.chunk_bytes < first <= 50_000
    assert first + 30_000 - fast_settings.chunk_bytes < second <= first + 30_000
    assert all(g["if_range"] for g in gets[1:])  # resumes are guarded by the ETag
    assert result.resumed_bytes == first + second


def test_stalled_server_times_out_and_resumes(fault_server, edr_bytes, tmp_path, fast_settings):
    url = _serve(fault_server, edr_bytes)
    fault_server.plan(_name(), ("stall", 3.0))
    result = fetch(PID, url=url, cache=tmp_path, settings=fast_settings)
    _assert_good(result, edr_bytes, tmp_path)
    gets = fault_server.gets(_name())
    assert len(gets) == 2 and gets[1]["range"] is not None
    assert gets[1]["time"] - gets[0]["time"] < 2.5  # the read timeout (0.5 s), not the stall, decided


def test_slow_but_steady_server_is_waited_for(fault_server, edr_bytes, tmp_path, fast_settings):
    url = _serve(fault_server, edr_bytes)
    fault_server.plan(_name(), ("hold", 0.3))  # slower than nothing, quicker than the read timeout
    result = fetch(PID, url=url, cache=tmp_path, settings=fast_settings)
    _assert_good(result, edr_bytes, tmp_path)
    assert result.requests == 1


def test_server_ignoring_range_restarts_from_zero(fault_server, edr_bytes, tmp_path, fast_settings):
    url = _serve(fault_server, edr_bytes)
    fault_server.plan(_name(), ("drop", 40_000), ("ignore-range",))
    result = fetch(PID, url=url, cache=tmp_path, settings=fast_settings)
    _assert_good(result, edr_bytes, tmp_path)
    assert result.resumed_bytes == 0


def test_wrong_range_answer_discards_partial(fault_server, edr_bytes, tmp_path, fast_settings):
    url = _serve(fault_server, edr_bytes)
    fault_server.plan(_name(), ("drop", 40_000), ("bad-range",))
    result = fetch(PID, url=url, cache=tmp_path, settings=fast_settings)
    _assert_good(result, edr_bytes, tmp_path)
    ranges = [g["range"] for g in fault_server.gets(_name())]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[2] is None


def test_corrupted_body_is_fetched_again(fault_server, edr_bytes, tmp_path, fast_settings):
    url = _serve(fault_server, edr_bytes)
    fault_server.plan(_name(), ("corrupt", 100_000))
    result = fetch(PID, url=url, cache=tmp_path, settings=fast_settings)
    _assert_good(result, edr_bytes, tmp_path)
    assert [g["range"] for g in fault_server.gets(_name())] == [None, None]  # a fresh download


def test_always_corrupted_is_a_verification_error(fault_server, edr_bytes, tmp_path, fast_settings):
    url = _serve(fault_server, edr_bytes)
    fault_server.always["/" + _name()] = ("corrupt", 100_000)
    with pytest.raises(VerificationError, match="CHECKSUM mismatch") as info:
        fetch(PID, url=url, cache=tmp_path, settings=fast_settings)
    assert "3 complete download(s) failed verification" in str(info.value)
    assert len(fault_server.gets(_name())) == 3
    _assert_nothing_cached(tmp_path)
    assert not list((tmp_path / ".partial").glob("*.part"))


def test_checksum_warn_accepts_only_identical_repeat(fault_server, edr_bytes, tmp_path, fast_settings):
    # with checksum "warn" a mismatching file is kept only when two downloads agree byte for byte:
    # then it is what the archive holds, not a transfer error
    url = _serve(fault_server, edr_bytes)
    fault_server.always["/" + _name()] = ("corrupt", 100_000)
    settings = dataclasses.replace(fast_settings, checksum="warn")
    with pytest.warns(DownloadWarning, match="two downloads gave identical bytes"):
        result = fetch(PID, url=url, cache=tmp_path, settings=settings)
    assert len(fault_server.gets(_name())) == 2
    assert result.warnings and "CHECKSUM mismatch" in result.warnings[0]


def test_checksum_warn_does_not_keep_a_transfer_error(fault_server, edr_bytes, tmp_path, fast_settings):
    url = _serve(fault_server, edr_bytes)
    fault_server.plan(_name(), ("corrupt", 100_000), ("corrupt", 120_000))
    settings = dataclasses.replace(fast_settings, checksum="warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DownloadWarning)
        result = fetch(PID, url=url, cache=tmp_path, settings=settings)
    _assert_good(result, edr_bytes, tmp_path)
    assert result.warnings == [] and len(fault_server.gets(_name())) == 3


def test_truncated_file_on_server_is_an_error(fault_server, edr_bytes, tmp_path, fast_settings):
    url = _serve(fault_server, edr_bytes)
    fault_server.always["/" + _name()] = ("truncate", 100_000)
    with pytest.raises(VerificationError, match="truncated|file-size") as info:
        fetch(PID, url=url, cache=tmp_path, settings=fast_settings)
    assert PID in str(info.value)
    _assert_nothing_cached(tmp_path)


def test_wrong_product_is_rejected(fault_server, edr_bytes, tmp_path, fast_settings):
    other = "P01_001473_2479_XI_67N185W"
    url = _serve(fault_server, edr_bytes, data=edr_bytes[other])
    with pytest.raises(VerificationError, match=f"the server sent {other}"):
        fetch(PID, url=url, cache=tmp_path, settings=fast_settings)
    _assert_nothing_cached(tmp_path)


def test_md5(fault_server, edr_bytes, tmp_path, fast_settings):
    url = _serve(fault_server, edr_bytes)
    good = hashlib.md5(edr_bytes[PID]).hexdigest()
    with pytest.raises(VerificationError, match="md5"):
        fetch(PID, url=url, cache=tmp_path, md5="0" * 32, settings=fast_settings)
    _assert_nothing_cached(tmp_path)
    result = fetch(PID, url=url, cache=tmp_path, md5=good.upper(), settings=fast_settings)
    assert result.md5 == good
    manifest = tmp_path / "md5.txt"
    manifest.write_text(f"{good}  DATA/{PID}.IMG\n{'1' * 32}  INDEX/CUMINDEX.TAB\nnot a line\n")
    assert read_md5_manifest(manifest) == {PID: good}


def test_404_is_not_retried(fault_server, tmp_path, fast_settings):
    with pytest.raises(ProductNotFoundError, match="404"):
        fetch(PID, url=f"{fault_server.base_url}/{_name()}", cache=tmp_path, settings=fast_settings)
    assert len(fault_server.gets(_name())) == 1
    _assert_nothing_cached(tmp_path)


def test_retries_exhausted_keeps_partial_and_next_fetch_resumes(fault_server, edr_bytes, tmp_path, fast_settings):
    url = _serve(fault_server, edr_bytes)
    settings = dataclasses.replace(fast_settings, retries=1)
    fault_server.plan(_name(), ("drop", 60_000), ("503",))
    with pytest.raises(DownloadError, match="gave up after 2 failed attempts, the last: HTTP 503") as info:
        fetch(PID, url=url, cache=tmp_path, settings=settings)
    kept = (tmp_path / ".partial" / f"{PID}.IMG.part").stat().st_size
    assert 0 < kept <= 60_000 and f"{kept:,} bytes are kept" in str(info.value)
    _assert_nothing_cached(tmp_path)

    result = fetch(PID, url=url, cache=tmp_path, settings=settings)
    _assert_good(result, edr_bytes, tmp_path)
    assert fault_server.gets(_name())[-1]["range"] == f"bytes={kept}-"
    assert result.resumed_bytes == kept


def test_changed_file_is_not_spliced(fault_server, edr_bytes, tmp_path, fast_settings):
    # the partial came from an older version: If-Range makes the server send the whole new file
    url = _serve(fault_server, edr_bytes)
    settings = dataclasses.replace(fast_settings, retries=0)
    fault_server.plan(_name(), ("drop", 60_000))
    with pytest.raises(DownloadError):
        fetch(PID, url=url, cache=tmp_path, settings=settings)
    changed = bytearray(edr_bytes[PID])
    changed[-1] ^= 0x01  # a different file (its checksum no longer matches, so use "warn" + md5)
    fault_server.add(_name(), bytes(changed))
    with pytest.warns(DownloadWarning, match="match the expected md5"):
        result = fetch(PID, url=url, cache=tmp_path, md5=hashlib.md5(changed).hexdigest(),
                       settings=dataclasses.replace(settings, checksum="warn"))
    assert cached_path(PID, tmp_path).read_bytes() == bytes(changed)
    assert result.resumed_bytes == 0
    last = fault_server.gets(_name())[-1]
    # the resume asked for the rest of the old version; the server, seeing a new ETag, sent all
    assert last["range"] is not None and last["if_range"] == f'"{hashlib.md5(edr_bytes[PID]).hexdigest()}"'


def test_damaged_cache_entry_is_replaced(fault_server, edr_bytes, tmp_path, fast_settings):
    url = _serve(fault_server, edr_bytes)
    fetch(PID, url=url, cache=tmp_path, settings=fast_settings)
    path = cached_path(PID, tmp_path)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 5056)
    result = fetch(PID, url=url, cache=tmp_path, settings=fast_settings)
    _assert_good(result, edr_bytes, tmp_path)
    assert not result.cached and "cached copy was bad" in result.warnings[0]


def test_locator_and_short_ids(fault_server, edr_bytes, tmp_path, fast_settings):
    url = _serve(fault_server, edr_bytes)
    locator = ProductLocator.from_mapping({PID: url})
    result = fetch("p01_001472", locator=locator, cache=tmp_path, settings=fast_settings)
    assert result.product_id == PID
    with pytest.raises(ProductNotFoundError):
        fetch("B10_013341_1010_XN_79S172W", locator=locator, cache=tmp_path, settings=fast_settings)


def test_rate_limit_spaces_requests(fault_server, edr_bytes, tmp_path, fast_settings):
    locator = {}
    for pid in edr_bytes:
        locator[pid] = _serve(fault_server, edr_bytes, pid)
    settings = dataclasses.replace(fast_settings, max_concurrent=1, requests_per_second=8.0)
    results = fetch_many(list(edr_bytes), locator=locator, cache=tmp_path, settings=settings)
    assert all(not isinstance(r, Exception) for r in results)
    starts = sorted(r["time"] for r in fault_server.log)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) == 4 and min(gaps) >= 1 / 8 - 0.01


def test_concurrency_limit_in_process(fault_server, edr_bytes, tmp_path, fast_settings):
    locator = {pid: _serve(fault_server, edr_bytes, pid) for pid in edr_bytes}
    for pid in edr_bytes:
        fault_server.plan(_name(pid), ("hold", 0.3))
    settings = dataclasses.replace(fast_settings, max_concurrent=2, semaphore="ctxdask-test-two")
    results = fetch_many([*edr_bytes, "not-an-id", PID], locator=locator, cache=tmp_path, settings=settings)
    assert [type(r).__name__ for r in results] == ["FetchResult"] * 4 + ["InvalidProductIdError"]
    assert fault_server.max_in_flight == 2


def test_concurrency_limit_across_a_dask_cluster(fault_server, edr_bytes, tmp_path, fast_settings):
    distributed = pytest.importorskip("distributed")
    locator = {pid: _serve(fault_server, edr_bytes, pid) for pid in edr_bytes}
    for pid in edr_bytes:
        fault_server.plan(_name(pid), ("hold", 0.2))
    settings = dataclasses.replace(fast_settings, max_concurrent=1, semaphore="ctxdask-test-cluster")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=False, dashboard_address=":0",
                                  worker_dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        results = fetch_many(list(edr_bytes), locator=locator, cache=tmp_path, settings=settings, client=client)
        assert all(type(r).__name__ == "FetchResult" for r in results), results
        # the limit was the cluster's semaphore, not a per-process one
        leases = client.run_on_scheduler(lambda dask_scheduler: dict(dask_scheduler.extensions["semaphores"].max_leases))
        assert leases.get("ctxdask-test-cluster") == 1
    assert fault_server.max_in_flight == 1
    assert sorted(os.listdir(tmp_path)) == sorted([".partial", *(f"{p}.IMG" for p in edr_bytes)])


def test_settings_from_config_and_checks():
    import dask.config

    with dask.config.set({"ctxdask.catalog.download.max-concurrent": 3,
                          "ctxdask.catalog.download.checksum": None,
                          "ctxdask.validate.checksum": "reject"}):
        settings = DownloadSettings.from_config(retries=1)
    assert settings.max_concurrent == 3 and settings.retries == 1 and settings.checksum == "reject"
    assert settings.request_interval == pytest.approx(3 / settings.requests_per_second)
    with pytest.raises(ValueError, match="max-concurrent"):
        DownloadSettings.from_config(max_concurrent=0)
    with pytest.raises(ValueError, match="checksum"):
        DownloadSettings.from_config(checksum="maybe")
