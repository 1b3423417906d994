"""Scratch of dead runs: half-made work dirs, partial deliveries and local scratch folders."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from ctxdask.batch.delivery import remove_partials
from ctxdask.batch.scratch import claim_local_scratch, clean_dead_scratch, remove_dead_local_scratch
from ctxdask.tools.owner import MARKER, write_owner


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _marked(folder, pid=None):
    folder.mkdir(parents=True)
    if pid is None:
        write_owner(folder)
    else:
        (folder / MARKER).write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "start": None}))
    (folder / "out.cub").write_bytes(b"x")
    return folder


def test_only_half_made_work_dirs_of_dead_processes_are_removed(tmp_path):
    dead = _marked(tmp_path / "ctxcal-A.tmp-0123abcd", _dead_pid())
    dead_old = _marked(tmp_path / "ctxcal-B.old-0123abcd", _dead_pid())
    live = _marked(tmp_path / "ctxcal-C.tmp-4567cdef")  # this process: a live run sharing the scratch
    unmarked = tmp_path / "ctxcal-D.tmp-89abcdef"  # made by an older version: liveness unknown
    unmarked.mkdir()
    finished = _marked(tmp_path / "ctxcal-E", _dead_pid())  # a finished work dir: reused by a resume
    removed = clean_dead_scratch(str(tmp_path))
    assert sorted(removed) == sorted([str(dead), str(dead_old)])
    assert not dead.exists() and not dead_old.exists()
    assert live.is_dir() and unmarked.is_dir() and finished.is_dir()


def test_partial_deliveries_are_removed_from_the_delivered_folders_only(tmp_path):
    image = tmp_path / "images" / "X"
    image.mkdir(parents=True)
    partial = image / ".X.thumb.png.0123abcd.partial"
    partial.write_bytes(b"")
    old_folder = tmp_path / "pairs" / "A-B" / ".results.0123abcd.old"
    old_folder.mkdir(parents=True)
    keep = [image / "X.thumb.png", tmp_path / ".report.html.0123abcd.partial", image / "notes.partial"]
    for path in keep:
        path.write_bytes(b"kept")
    assert sorted(remove_partials(tmp_path)) == sorted([str(partial), str(old_folder)])
    assert all(path.exists() for path in keep) and not partial.exists() and not old_folder.exists()
    assert os.listdir(tmp_path / "pairs" / "A-B") == []


def test_local_scratch_of_dead_drivers_goes_once_their_output_folder_is_gone(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    mine = claim_local_scratch(tmp_path / "out-live")  # this process: a live driver
    (tmp_path / "out-kept").mkdir()
    kept = _marked(tmp_path / "tmp" / "ctxdask-scratch-kept", _dead_pid())
    (kept / MARKER).write_text((kept / MARKER).read_text().replace("}", f', "out": "{tmp_path / "out-kept"}"}}'))
    gone = _marked(tmp_path / "tmp" / "ctxdask-scratch-gone", _dead_pid())
    (gone / MARKER).write_text((gone / MARKER).read_text().replace("}", f', "out": "{tmp_path / "out-gone"}"}}'))
    other = tmp_path / "tmp" / "unrelated"
    other.mkdir()
    assert remove_dead_local_scratch() == [str(gone)]
    assert os.path.isdir(mine) and kept.is_dir() and other.is_dir()  # a rerun on out-kept adopts its scratch


def test_failed_attempts_go_once_their_step_is_done(tmp_path):
    """An earlier run's failed attempts (their logs) stay while the step is not done, and go after."""
    from ctxdask.batch.scratch import failed_attempts, remove_failed_attempts

    for name in ("stereo_tile-A-B-003.failed", "ctxcal-C.failed", "ctxcal-D", "ctxcal-E.tmp-0123abcd"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "log.txt").write_text("x")
    assert failed_attempts(str(tmp_path)) == ["ctxcal-C", "stereo_tile-A-B-003"]

    class Inline:  # a client whose submit runs the clean-up here, on "worker w1"
        def __init__(self):
            self.where = []

        def submit(self, fn, *args, workers, **kw):
            self.where.append(workers)
            return fn(*args)

    client = Inline()
    found = {"stereo_tile-A-B-003": {"w1"}, "ctxcal-C": {"w1"}}
    assert remove_failed_attempts(client, found, {"stereo_tile-A-B-003", "ctxcal-D"}, str(tmp_path)) == [1]
    assert client.where == [["w1"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctxcal-C.failed", "ctxcal-D", "ctxcal-E.tmp-0123abcd"]


def test_a_done_tiles_work_dir_left_by_a_killed_driver_goes(tmp_path):
    """Seen in CI: the driver was killed after a tile was delivered and recorded done but before its
    work dir was removed; the rerun never runs that tile again, so the end of the rerun removes it.
    A finished step's work dir stays (later steps reuse it)."""
    from ctxdask.batch.scratch import failed_attempts, remove_failed_attempts
    from ctxdask.tools.tasks import MANIFEST

    for name in ("stereo_tile-A-B-000", "stereo_tile-A-B-001", "ctxcal-D", "stereo_tile-A-B-002.tmp-0123abcd"):
        (tmp_path / name).mkdir()
        (tmp_path / name / MANIFEST).write_text("{}")
    assert failed_attempts(str(tmp_path)) == ["stereo_tile-A-B-000", "stereo_tile-A-B-001"]

    class Inline:
        def submit(self, fn, *args, **kw):
            return fn(*args)

    found = {"stereo_tile-A-B-000": {"w1"}, "stereo_tile-A-B-001": {"w1"}}
    assert remove_failed_attempts(Inline(), found, {"stereo_tile-A-B-000", "ctxcal-D"}, str(tmp_path)) == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctxcal-D", "stereo_tile-A-B-001",
                                                          "stereo_tile-A-B-002.tmp-0123abcd"]
