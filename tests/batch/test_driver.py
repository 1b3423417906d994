"""The driver end to end on a multi-process LocalCluster with the stand-in programs."""

from __future__ import annotations

import functools
import hashlib
import json

import dask
import pytest

from ctxdask.batch import run_batch
from ctxdask.tools.recipe import build_recipe

from .conftest import IDS, faulty_runner, make_images, query, statuses, write_pairs

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

P1, P2, P3 = (IDS[0], IDS[1]), (IDS[0], IDS[2]), (IDS[1], IDS[3])


def _pid(pair):
    return f"{pair[0]}-{pair[1]}"


def _calls(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_full_chain_delivers_checksummed_products_and_reruns_nothing(tmp_path, cluster_client):
    edr = make_images(tmp_path / "edr", IDS, summing2={IDS[2]})
    pairs = write_pairs(tmp_path / "pairs.txt", [P1, P2, P3], extra="M\n")
    calls = tmp_path / "calls.jsonl"
    recipe = build_recipe(env={"CTXDASK_STANDIN_CALLS": str(calls)})
    # 1 kB chunks: every product crosses the dask connection in several pieces
    with dask.config.set({"ctxdask.batch.chunk-size": 1000}):
        summary = run_batch(pairs, tmp_path / "out", source=edr, client=cluster_client, recipe=recipe,
                            settings={"batch.progress": False})
    assert summary.ok, summary
    assert summary.pairs == {"done": 3} and summary.images == {"done": 4}
    assert [(r.line, r.text) for r in summary.rejected] == [(4, "M")]
    db = tmp_path / "out" / "ctxdask-batch.sqlite"
    # image steps once per image although IDS[0] and IDS[1] are in two pairs each;
    # no ctxevenodd for the summing-2 image
    programs = [c["program"] for c in _calls(calls)]
    assert programs.count("mroctx2isis") == 4 and programs.count("ctxevenodd") == 3
    assert programs.count("point2dem") == 3
    rows = query(db, "SELECT key, status, attempts, worker, started, ended, exit_code FROM steps")
    assert all(r[1] == "done" and r[2] == 1 and r[3].startswith("tcp://") and r[4] <= r[5] for r in rows)
    # fetch+validate+quality, calibration, evenodd, pair steps with pair_quality
    assert len(rows) == 4 * 3 + 4 * 3 + 3 + 3 * 4
    products = query(db, "SELECT path, size, sha256 FROM products")
    # per pair: COGs of the DEM, DRG, IntersectionErr, hillshade and colour relief; hillshade,
    # relief and ortho thumbnails, qa_metrics, provenance and STAC item; per image: quality
    # JSON and thumbnail (no raw ASP rasters by default: batch.deliver is empty); the batch's
    # STAC catalog.json and collection.json
    assert len(products) == 3 * 11 + 4 * 2 + 2
    for path, size, sha in products:
        data = open(path, "rb").read()
        assert len(data) == size and hashlib.sha256(data).hexdigest() == sha
    dem = tmp_path / "out" / "pairs" / _pid(P1) / f"{_pid(P1)}-DEM.tif"
    assert dem.is_file() and not list((tmp_path / "out").rglob("*.partial"))
    assert not list((tmp_path / "out").rglob("results/*.tif"))
    provenance = json.loads((dem.parent / "provenance.json").read_text())
    keys = {s["key"] for s in provenance["steps"]}
    assert {f"point2dem-{_pid(P1)}", f"parallel_stereo-{_pid(P1)}", f"mroctx2isis-{P1[0]}"} <= keys
    assert all(s["argv"] and s["started"] and s["exit_code"] == 0 for s in provenance["steps"])
    assert set(provenance["inputs"]["edrs"]) == set(P1)
    assert (tmp_path / "out" / "catalog.json").is_file() and (tmp_path / "out" / "collection.json").is_file()
    _check_quality(tmp_path / "out", db, IDS, [P1, P2, P3])

    before = query(db, "SELECT key, started FROM steps")
    again = run_batch(pairs, tmp_path / "out", source=edr, client=cluster_client, recipe=recipe,
                      settings={"batch.progress": False})
    assert again.planned == 0 and again.already_done == 3 and again.ok
    assert len(_calls(calls)) == len(programs)  # nothing ran again
    assert query(db, "SELECT key, started FROM steps") == before
    assert query(db, "SELECT count(*), max(status) FROM runs") == [(2, "done")]


def _check_quality(out, db, images, pairs):
    """Every image has a grade, metrics and a delivered thumbnail; every pair its DEM products."""
    rows = query(db, "SELECT product_id, grade, reasons, metrics, thumbnail FROM quality ORDER BY product_id")
    assert [r[0] for r in rows] == sorted(images)
    for pid, grade, reasons, metrics, thumbnail in rows:
        assert grade in ("pass", "warn", "fail") and isinstance(json.loads(reasons), list)
        assert json.loads(metrics)["product_id"] == pid and json.loads(metrics)["lines"] == 16
        assert thumbnail == f"images/{pid}/{pid}.thumb.png"
        assert (out / thumbnail).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = query(db, "SELECT pair_id, statistics, stac, hillshade, colour_relief, ortho_thumbnail "
                     "FROM pair_quality ORDER BY pair_id")
    assert [r[0] for r in rows] == sorted(_pid(p) for p in pairs)
    for pair_id, statistics, stac, *pictures in rows:
        assert json.loads(statistics)["valid_count"] > 0
        assert stac == f"pairs/{pair_id}/{pair_id}.stac.json"
        assert all(p.startswith(f"pairs/{pair_id}/") and (out / p).is_file() for p in pictures)
        item = json.loads((out / stac).read_text())
        assert item["id"] == pair_id and item["properties"]["datetime"].startswith("20")
        for asset in item["assets"].values():  # relative hrefs that resolve in the output folder
            assert (out / stac).parent.joinpath(asset["href"]).is_file(), asset


def test_hang_crash_and_invalid_edr_are_recorded_and_the_batch_goes_on(tmp_path, cluster_client):
    bad = "B11_013842_1010_XN_79S172W"
    edr = make_images(tmp_path / "edr", [*IDS, bad])
    path = edr / f"{bad}.IMG"
    path.write_bytes(path.read_bytes()[:-300])  # cut short, like an interrupted download
    p4 = (IDS[3], bad)
    pairs = write_pairs(tmp_path / "pairs.txt", [P1, P2, P3, p4])
    faults = {f"parallel_stereo-{_pid(P1)}": "hang", f"point2dem-{_pid(P2)}": "crash"}
    # one scratch folder for both workers: a rerun on either finds the work done before
    scratch = tmp_path / "scratch"
    summary = run_batch(pairs, tmp_path / "out", source=edr, client=cluster_client,
                        runner=functools.partial(faulty_runner, faults=faults),
                        settings={"tools.timeouts.parallel_stereo": 3, "batch.progress": False,
                                  "batch.scratch": str(scratch)})
    assert not summary.ok and summary.status == "done"
    db = tmp_path / "out" / "ctxdask-batch.sqlite"
    steps, pairs_status = statuses(db), statuses(db, "pairs")
    assert steps[f"parallel_stereo-{_pid(P1)}"] == "timeout"
    assert steps[f"point2dem-{_pid(P1)}"] == "skipped"
    assert steps[f"point2dem-{_pid(P2)}"] == "failed", open('/tmp/dlv/steps.txt', 'w').write(repr(query(db, "SELECT key, status, error FROM steps WHERE status != 'done'")))
    assert steps[f"validate-{bad}"] == "failed"
    assert pairs_status == {_pid(P1): "timeout", _pid(P2): "failed", _pid(P3): "done", _pid(p4): "failed"}
    (error, code), = query(db, "SELECT error, exit_code FROM steps WHERE key = ?", (f"point2dem-{_pid(P2)}",))
    assert code == -11 and "SIGSEGV" in error and "crashing (stand-in fault)" in error
    (error,), = query(db, "SELECT error FROM steps WHERE key = ?", (f"parallel_stereo-{_pid(P1)}",))
    assert "3 s deadline" in error
    (error,), = query(db, "SELECT error FROM steps WHERE key = ?", (f"validate-{bad}",))
    assert "validation failed: file-size: truncated" in error
    (error,), = query(db, "SELECT error FROM pairs WHERE pair_id = ?", (_pid(p4),))
    assert f"right image {bad} is failed" in error

    # a plain rerun leaves failures alone; --retry-failed reruns them and only them (break 11): every
    # step recorded done, upstream of a failure or not, keeps its start time and attempt count
    done_before = query(db, "SELECT key, started FROM steps WHERE subject = ?", (_pid(P3),))
    again = run_batch(pairs, tmp_path / "out", source=edr, client=cluster_client,
                      settings={"batch.progress": False, "batch.scratch": str(scratch)})
    assert again.planned == 0 and again.waiting == 3
    done = dict((k, (s, a)) for k, s, a in query(db, "SELECT key, started, attempts FROM steps WHERE status = 'done'"))
    path.write_bytes(make_images(tmp_path / "fixed", [bad]).joinpath(f"{bad}.IMG").read_bytes())
    retried = run_batch(pairs, tmp_path / "out", source=edr, client=cluster_client,
                        settings={"batch.retry-failed": True, "batch.progress": False, "batch.scratch": str(scratch)})
    assert retried.ok and retried.planned == 3, retried
    assert query(db, "SELECT key, started FROM steps WHERE subject = ?", (_pid(P3),)) == done_before
    after = dict((k, (s, a)) for k, s, a in query(db, "SELECT key, started, attempts FROM steps"))
    assert {k: (v, after[k]) for k, v in done.items() if after[k] != v} == {}
    assert after[f"parallel_stereo-{_pid(P1)}"][1] == 2 and after[f"point2dem-{_pid(P2)}"][1] == 2


def test_steps_subset_and_shared_delivery(tmp_path, cluster_client):
    edr = make_images(tmp_path / "edr", IDS[:3])
    pairs = write_pairs(tmp_path / "pairs.txt", [P1, P2])
    out = tmp_path / "out"
    first = run_batch(pairs, out, source=edr, client=cluster_client,
                      settings={"batch.steps": ["validate"], "batch.progress": False})
    assert first.ok and first.pairs == {"done": 2}
    assert set(query(out / "ctxdask-batch.sqlite", "SELECT DISTINCT step FROM steps")) == {("fetch",), ("validate",)}
    # the whole chain later: the pairs are not done for it, so they run; validated images rerun cheaply
    full = run_batch(pairs, out, source=edr, client=cluster_client,
                     settings={"batch.delivery": "shared", "batch.deliver": ["point2dem", "ctxcal"],
                               "batch.progress": False})
    assert full.ok and full.planned == 2
    cal = out / "images" / IDS[0] / f"{IDS[0]}.cal.cub"
    assert cal.is_file() and (out / "pairs" / _pid(P2) / "results" / "out-DEM.tif").is_file()
    (sha,), = query(out / "ctxdask-batch.sqlite", "SELECT sha256 FROM products WHERE path = ?", (str(cal),))
    assert hashlib.sha256(cal.read_bytes()).hexdigest() == sha


def test_unknown_step_is_refused(tmp_path, cluster_client):
    pairs = write_pairs(tmp_path / "pairs.txt", [P1])
    with pytest.raises(ValueError, match="unknown steps"):
        run_batch(pairs, tmp_path / "out", source=tmp_path, client=cluster_client,
                  settings={"batch.steps": ["stereo"]})
    assert not (tmp_path / "out").exists()  # refused before anything is made


def test_a_scheduler_that_cannot_be_reached_leaves_no_output_folder_behind(tmp_path):
    """No run began: the folder this call made goes again; a folder that was there stays, with its files."""
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    edr = make_images(tmp_path / "edr", P1)
    pairs = write_pairs(tmp_path / "pairs.txt", [P1])
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine\n")
    with dask.config.set({"distributed.comm.timeouts.connect": "0.5s"}):
        for out in (tmp_path / "new" / "out", existing):
            with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
                run_batch(pairs, out, source=edr, settings={"batch.scheduler": f"tcp://127.0.0.1:{port}",
                                                            "batch.progress": False})
    assert not (tmp_path / "new" / "out").exists()
    assert (existing / "notes.txt").read_text() == "mine\n"


def test_a_scheduler_named_by_the_settings_is_connected_as_ctxdask_connects(tmp_path, cluster_client):
    """``batch.scheduler``: versions checked, and programs stopped with their worker (the plugin)."""
    edr = make_images(tmp_path / "edr", P1)
    pairs = write_pairs(tmp_path / "pairs.txt", [P1])
    database = tmp_path / "elsewhere" / "tracking.sqlite"
    database.parent.mkdir()
    summary = run_batch(pairs, tmp_path / "out", source=edr,
                        settings={"batch.scheduler": cluster_client.scheduler.address, "batch.progress": False,
                                  "batch.steps": ["validate"], "batch.database": str(database)})
    assert summary.ok and summary.database == str(database) and database.is_file()
    assert not (tmp_path / "out" / "ctxdask-batch.sqlite").exists()
    plugins = cluster_client.run(lambda dask_worker: "ctxdask-stop-programs" in dask_worker.plugins)
    assert set(plugins.values()) == {True}


def test_image_chain_runs_as_one_task_and_stops_at_the_first_failed_step(tmp_path, cluster_client):
    """One dask task per image; each step still has its own row, and a crash skips the rest with the reason."""
    edr = make_images(tmp_path / "edr", IDS[:2])
    pairs = write_pairs(tmp_path / "pairs.txt", [P1])
    faults = {f"spiceinit-{IDS[1]}": "crash"}
    summary = run_batch(pairs, tmp_path / "out", source=edr, client=cluster_client,
                        runner=functools.partial(faulty_runner, faults=faults), settings={"batch.progress": False})
    assert not summary.ok and summary.pairs == {"failed": 1}
    db = tmp_path / "out" / "ctxdask-batch.sqlite"
    steps = statuses(db)
    assert all(steps[f"{s}-{IDS[0]}"] == "done" for s in ("fetch", "validate", "quality", "mroctx2isis",
                                                            "spiceinit", "ctxcal", "ctxevenodd"))
    assert steps[f"mroctx2isis-{IDS[1]}"] == "done" and steps[f"spiceinit-{IDS[1]}"] == "failed"
    assert steps[f"ctxcal-{IDS[1]}"] == steps[f"ctxevenodd-{IDS[1]}"] == "skipped"
    (error, code, log), = query(db, "SELECT error, exit_code, log_path FROM steps WHERE key = ?",
                                (f"spiceinit-{IDS[1]}",))
    assert code == -11 and "SIGSEGV" in error and log
    (error,), = query(db, "SELECT error FROM steps WHERE key = ?", (f"ctxcal-{IDS[1]}",))
    assert error == f"not run: spiceinit-{IDS[1]} is failed"
    # every step timed on its own
    rows = query(db, "SELECT started, ended, duration FROM steps WHERE subject = ? AND status = 'done'", (IDS[0],))
    assert len(rows) == 7 and all(s <= e and d >= 0 for s, e, d in rows)


def test_one_bad_line_never_stops_the_batch(tmp_path, cluster_client):
    """A non-ASCII id is rejected on its own line (with its number); the good pairs run."""
    edr = make_images(tmp_path / "edr", IDS[:3])
    wide = IDS[2].replace("013341", "０１３３４１")  # full-width digits: str.isdigit() says yes
    path = tmp_path / "pairs.txt"
    path.write_bytes(b"\xef\xbb\xbf" + f"{P1[0]} {P1[1]}\n{IDS[0]} {wide}\n{P2[0]} {P2[1]}\n".encode())
    summary = run_batch(path, tmp_path / "out", source=edr, client=cluster_client,
                        settings={"batch.steps": ["validate"], "batch.progress": False})
    assert summary.ok and summary.pairs == {"done": 2}, summary
    assert [r.line for r in summary.rejected] == [2] and "only ASCII" in summary.rejected[0].reason
    db = tmp_path / "out" / "ctxdask-batch.sqlite"
    assert query(db, "SELECT line, reason FROM rejected") == [(2, summary.rejected[0].reason)]
    assert query(db, "SELECT status FROM runs") == [("done",)]


def test_a_list_without_usable_pairs_is_an_error_naming_the_reasons(tmp_path, capsys):
    from ctxdask.batch.pairlist import EmptyPairListError
    from ctxdask.cli import main

    path = tmp_path / "pairs.txt"
    path.write_text(f"M\n{IDS[0]} {IDS[0]}\n")
    with pytest.raises(EmptyPairListError, match=r"all 2 lines were rejected: line 1: expected two .*line 2: a pair needs"):
        run_batch(path, tmp_path / "out", source=tmp_path)
    assert main(["batch", str(path), "--out", str(tmp_path / "out"), "--edr-dir", str(tmp_path),
                 "--no-progress"]) != 0
    text = capsys.readouterr().err  # errors go to stderr
    assert str(path) in text and "line 1" in text and "line 2" in text


def test_an_exception_in_the_driver_ends_the_run_row_with_the_error(tmp_path, cluster_client, monkeypatch):
    from ctxdask.batch import loop

    def broken(self, *args):
        raise RuntimeError("a bug in the driver")

    monkeypatch.setattr(loop.Driver, "run", broken)
    pairs = write_pairs(tmp_path / "pairs.txt", [P1])
    with pytest.raises(RuntimeError, match="a bug in the driver"):
        run_batch(pairs, tmp_path / "out", source=make_images(tmp_path / "edr", P1), client=cluster_client,
                  settings={"batch.progress": False})
    (status, ended, error), = query(tmp_path / "out" / "ctxdask-batch.sqlite", "SELECT status, ended, error FROM runs")
    assert status == "failed" and ended and "RuntimeError: a bug in the driver" in error
