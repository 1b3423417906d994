"""Grades posted to a real server (8 clients, at least 200 grades, from before the first step ends until
after the run closes) while a real batch in its own process writes the same database: all stored, batch unaffected."""

from __future__ import annotations

import itertools
import re
import sqlite3
import subprocess
import sys
import threading
import time

import httpx
import pytest

from ctxdask.batch import read_pairs
from ctxdask.tracking import TrackingDB

from ..batch.conftest import IDS, make_images, write_pairs
from ..tools.conftest import standin_path
from .conftest import ROOT, serving

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


def test_200_grades_while_a_batch_writes(tmp_path):
    edr = make_images(tmp_path / "edr", IDS)
    pairs_file = write_pairs(tmp_path / "pairs.txt", [(IDS[0], IDS[1]), (IDS[2], IDS[3]), (IDS[0], IDS[3])])
    pairs = read_pairs(pairs_file)
    out = tmp_path / "out"
    with TrackingDB(out / "ctxdask-batch.sqlite") as db:  # the subjects exist before the first grade
        db.register(pairs.pairs, pairs.images)
    with serving(out) as server, httpx.Client(base_url=server.base, timeout=60) as client, \
            open(tmp_path / "batch.log", "wb") as log:
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get(f"/image/{IDS[0]}").text).group(1)
        env = {"PATH": standin_path(), "CTXDASK_STANDIN_SLEEP": "0.2", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
        batch = subprocess.Popen([sys.executable, "-m", "ctxdask", "batch", str(pairs_file), "--out", str(out),
                                  "--edr-dir", str(edr), "--local", "1", "--no-progress", "--calibration", "isis"], env=env,
                                 # a file, not a pipe: nobody reads a pipe while the graders run, and a full
                                 # one would stop the driver mid-run
                                 stdout=log, stderr=subprocess.STDOUT)
        statuses: list[int] = []
        lock = threading.Lock()

        counter = itertools.count()  # unbounded: a slow batch (a loaded machine) is graded to its end

        errors: list[str] = []

        def post(worker: int) -> None:
            try:
                grade(worker)
            except Exception as exc:  # noqa: BLE001 - a thread's error fails the test below, with its name
                errors.append(f"grader {worker}: {exc!r}")

        def grade(worker: int) -> None:
            # grade until the batch has finished and at least 200 grades went in: they span the whole run
            with httpx.Client(base_url=server.base, timeout=60, cookies=client.cookies) as c:
                while batch.poll() is None or len(statuses) < 200:
                    with lock:
                        n = next(counter)
                    scope, subject = ("image", IDS[n % 4]) if n % 5 else ("pair", pairs.pairs[n % 3].pair_id)
                    r = c.post(f"/{scope}/{subject}/grade", headers={"Accept": "application/json"},
                               data={"csrf": csrf, "value": ("pass", "warn")[n % 2], "note": f"grade {n}",
                                     "who": f"w{worker}"})
                    with lock:
                        statuses.append(r.status_code)
                    time.sleep(0.05)

        threads = [threading.Thread(target=post, args=(w,)) for w in range(8)]
        try:
            # start grading once the driver is writing: its run is open and steps are under way
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and batch.poll() is None:
                with sqlite3.connect(f"file:{out / 'ctxdask-batch.sqlite'}?mode=ro", uri=True) as conn:
                    if conn.execute("SELECT count(*) FROM steps WHERE status = 'running'").fetchone()[0]:
                        break
                time.sleep(0.1)
            for t in threads:
                t.start()
            for t in threads:
                t.join(240)
            batch.wait(timeout=240)
        finally:
            if batch.poll() is None:
                batch.kill()
                batch.wait()
    assert errors == [], errors
    posted = len(statuses)
    assert posted >= 200 and statuses.count(200) == posted, sorted(set(statuses))
    output = (tmp_path / "batch.log").read_text()
    assert batch.returncode == 0, output
    assert "database is locked" not in output
    with sqlite3.connect(out / "ctxdask-batch.sqlite") as conn:
        notes = sorted(int(n.split()[1]) for (n,) in conn.execute("SELECT note FROM manual_grades"))
        assert notes == list(range(posted))  # every grade stored, none twice
        assert dict(conn.execute("SELECT status, count(*) FROM pairs GROUP BY status")) == {"done": 3}
        assert conn.execute("SELECT count(*) FROM steps WHERE status != 'done'").fetchone()[0] == 0
        started, ended = conn.execute("SELECT started, ended FROM runs").fetchone()
        first, last = conn.execute("SELECT min(at), max(at) FROM manual_grades").fetchone()
        # the grades went in while the run was open, and the driver wrote steps in between
        assert started < first and first < ended < last, (started, first, last, ended)
        assert conn.execute("SELECT count(*) FROM steps WHERE updated BETWEEN ? AND ?", (first, last)).fetchone()[0]
