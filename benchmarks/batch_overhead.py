"""Driver overhead of ``ctxdask batch``: the real pair list with steps that do nothing.

1,540 pairs (2,524 images) on a 2-worker LocalCluster. Fetch is a no-op source
and every recipe step a no-op runner, so what is measured is the batch itself:
planning, task submission, results through ``as_completed``, the tracking
database, the dependency chains (fetch -> validate -> 4 image steps, one dask
task per image; then 3 pair steps, one task each) and the scheduler round
trips. Validation is the real one, on 16-line EDRs (it parses every label).
The batch's quality steps (real image metrics and DEM products) are switched
off: they are work, not overhead.

``--scale 1 10`` also runs a list ten times the real one (every pair repeated
with distinct synthetic product ids: the phase's second character becomes a
letter, ``B01_009855_...`` -> ``BA1_009855_...``), each size in a fresh
process, and prints both side by side: wall time, driver CPU per pair (the
driver's own thread; the LocalCluster's scheduler runs in the same process, on
its event-loop thread, and is counted in "process CPU"), peak driver RSS above
what the process held before the run, where the driver's thread spent its time
(planning, submission, as_completed and gathers, result handling, database
writes), and the floor: the same number of no-op tasks sent straight through
``client.map`` and ``as_completed(with_results=True)`` on the same cluster,
which is what dask itself costs.

Targets: the real list in under 20 s; driver CPU and peak RSS per pair at ten
times the list no more than 1.25x (plus 2 ms / 2 kB of noise) those of the real
list. Exit status 1 when one is missed.

Run::

    .venv/bin/python benchmarks/batch_overhead.py [--pairs FILE] [--workers 2] [--scale 1 10] [--profile OUT]
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time

REFERENCE = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "reference"
TARGET_S = 20.0
REAL_PAIRS = 1540
FLAT = 1.25  # per-pair figures at the larger size within this factor of the smaller's (plus the slack below)
SLACK_MS, SLACK_KB = 2.0, 2.0


def noop_runner(call, *upstream, options):
    """A recipe step that does nothing but say it succeeded."""
    from ctxdask.tools.tasks import StepResult

    return StepResult(key=call.key, step=call.step, program=call.program, workdir="", outputs={},
                      log_path="", returncode=0, duration=0.0, started="", host=socket.gethostname(),
                      cached=False, fingerprint=call.key)


def noop(x):
    return x


def scaled(pairs, scale: int) -> list[tuple[str, str]]:
    """The list ``scale`` times: copy k > 0 with the phase's second character made the letter k (A, B, ...)."""
    out = []
    for k in range(scale):
        def rename(pid, k=k):
            return pid if k == 0 else pid[0] + chr(ord("A") + k - 1) + pid[2:]

        out += [(rename(p.left), rename(p.right)) for p in pairs.pairs]
    return out


class Phases:
    """CPU time of the driver's thread by phase (a phase inside another is not counted twice)."""

    def __init__(self):
        self.own: collections.Counter = collections.Counter()
        self.stack: list[str] = []
        self.mark = 0.0
        self.thread = threading.current_thread()

    def wrap(self, owner, name: str, phase: str) -> None:
        orig = getattr(owner, name)

        def wrapper(*args, **kwargs):
            if threading.current_thread() is not self.thread:
                return orig(*args, **kwargs)
            now = time.thread_time()
            if self.stack:
                self.own[self.stack[-1]] += now - self.mark
            self.stack.append(phase)
            self.mark = now
            try:
                return orig(*args, **kwargs)
            finally:
                now = time.thread_time()
                self.own[self.stack.pop()] += now - self.mark
                self.mark = now

        setattr(owner, name, wrapper)


def instrument() -> Phases:
    """Wrap the driver's phases (the names are the batch modules' own)."""
    from ctxdask.batch import driver, loop, results, submission
    from ctxdask.tracking import writer

    phases = Phases()
    phases.wrap(driver, "plan_run", "planning")
    phases.wrap(submission.Submitter, "flush", "submission")
    phases.wrap(loop.Driver, "_results", "as_completed + gather")
    phases.wrap(results.ResultHandler, "dispatch", "result handling")
    phases.wrap(results.ResultHandler, "delivered", "result handling")
    phases.wrap(results.ResultHandler, "drain_events", "result handling")
    for name in ("upsert_step", "set_subject", "pending_steps", "record_product", "set_quality",
                 "set_pair_quality", "step_status", "done_tiles", "register", "start_run", "end_run"):
        phases.wrap(writer.TrackingDB, name, "database")
    # the commit: the connection is a C object; its execute is reached through the TrackingDB's transaction
    orig = writer.TrackingDB.transaction

    def transaction(self):
        inner = orig(self)

        class Timed:
            def __enter__(s):
                return inner.__enter__()

            def __exit__(s, *exc):
                now = time.thread_time()
                try:
                    return inner.__exit__(*exc)
                finally:
                    phases.own["database"] += time.thread_time() - now
                    if phases.stack:  # not the enclosing phase's
                        phases.own[phases.stack[-1]] -= time.thread_time() - now
        return Timed()

    writer.TrackingDB.transaction = transaction
    return phases


class PeakRSS(threading.Thread):
    """Samples this process's RSS every 20 ms until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = self.rss()
        self.halt = threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def run(self):
        while not self.halt.wait(0.02):
            self.peak = max(self.peak, self.rss())


def worker_cpu() -> float:
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system


def child(args) -> dict:
    """One size in this process: the batch, then the floor on the same cluster."""
    import dask
    from distributed import Client, LocalCluster, as_completed

    from ctxdask.batch import parse_pairs, read_pairs, run_batch
    from ctxdask.testing import make_edr
    from ctxdask.tracking import BatchView

    phases = instrument()
    real = read_pairs(args.pairs)
    with tempfile.TemporaryDirectory(prefix="ctxdask-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        listed = tmp / "pairs.txt"
        listed.write_text("".join(f"{a} {b}\n" for a, b in scaled(real, args.size)))
        pairs = parse_pairs(listed.read_text().splitlines(), source=str(listed))
        for pid in pairs.images:
            make_edr(tmp / "edr" / f"{pid}.IMG", lines=16, line_samples=128)
        with LocalCluster(n_workers=args.workers, threads_per_worker=2, processes=True,
                          resources={"stereo": 1}, dashboard_address=":0",
                          silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            client.gather(client.map(noop, range(100), pure=False))  # warm the workers up
            workers0 = sum(client.run(worker_cpu).values())
            monitor = PeakRSS()
            before = monitor.peak
            monitor.start()
            profiler = None
            if args.profile:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            t0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
            # quality steps are real work (image metrics, DEM products), not driver overhead
            with dask.config.set({"ctxdask.batch.quality": False}):
                summary = run_batch(pairs, tmp / "out", source=tmp / "edr", client=client, runner=noop_runner,
                                    settings={"batch.deliver": [], "batch.progress": False})
            wall, cpu, proc = time.perf_counter() - t0, time.thread_time() - c0, time.process_time() - p0
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(args.profile)
            monitor.halt.set()
            monitor.join()
            workers = sum(client.run(worker_cpu).values()) - workers0
            with BatchView(summary.database) as view:
                rows = view.all_steps()
            # one dask task per image, one per pair step
            steps, tasks = len(rows), len(pairs.images) + sum(1 for r in rows if r["scope"] == "pair")
            # the floor: as many no-op tasks, straight through client.map and as_completed
            f0, fc0 = time.perf_counter(), time.thread_time()
            for _ in as_completed(client.map(noop, range(tasks), pure=False), with_results=True):
                pass
            floor, floor_cpu = time.perf_counter() - f0, time.thread_time() - fc0
    print(summary, file=sys.stderr)
    return dict(size=args.size, pairs=len(pairs), images=len(pairs.images), steps=steps, tasks=tasks,
                ok=summary.ok and summary.pairs.get("done") == len(pairs), wall=wall, cpu=cpu, process=proc,
                workers=workers, rss=monitor.peak - before, phases=dict(phases.own), floor=floor,
                floor_cpu=floor_cpu)


def report(rows: list[dict]) -> bool:
    """Print the sizes side by side and say whether the targets are met."""
    def col(fmt, get):
        return " | ".join(fmt.format(get(r)) for r in rows)

    names = sorted({p for r in rows for p in r["phases"]}, key=lambda p: -rows[0]["phases"].get(p, 0))
    lines = [
        ("pairs / images / steps / dask tasks", col("{}", lambda r: f"{r['pairs']} / {r['images']} / {r['steps']} / "
                                                                 f"{r['tasks']}")),
        ("wall s", col("{:.1f}", lambda r: r["wall"])),
        ("floor: the same tasks via client.map, wall s", col("{:.1f}", lambda r: r["floor"])),
        ("wall ms per pair", col("{:.2f}", lambda r: 1000 * r["wall"] / r["pairs"])),
        ("driver CPU ms per pair (its thread)", col("{:.2f}", lambda r: 1000 * r["cpu"] / r["pairs"])),
        *((f"  {p}", col("{:.2f}", lambda r, p=p: 1000 * r["phases"].get(p, 0) / r["pairs"])) for p in names),
        ("  other", col("{:.2f}", lambda r: 1000 * (r["cpu"] - sum(r["phases"].values())) / r["pairs"])),
        ("floor: driver CPU ms per task", col("{:.2f}", lambda r: 1000 * r["floor_cpu"] / r["tasks"])),
        ("process CPU ms per pair (with scheduler)", col("{:.2f}", lambda r: 1000 * r["process"] / r["pairs"])),
        ("workers' CPU ms per pair", col("{:.2f}", lambda r: 1000 * r["workers"] / r["pairs"])),
        ("peak driver RSS MB (above start)", col("{:.0f}", lambda r: r["rss"] / 2**20)),
        ("peak driver RSS kB per pair", col("{:.1f}", lambda r: r["rss"] / 1024 / r["pairs"])),
    ]
    width = max(len(name) for name, _ in lines)
    print(f"{'':{width}}   " + " | ".join(f"x{r['size']}" for r in rows))
    for name, values in lines:
        print(f"{name:{width}}   {values}")
    ok = all(r["ok"] for r in rows)
    first, last = rows[0], rows[-1]
    real = [r for r in rows if r["size"] == 1 and r["pairs"] == REAL_PAIRS]
    fast = bool(real) and real[0]["wall"] < TARGET_S
    print(f"\ntarget: the real list ({REAL_PAIRS} pairs) in under {TARGET_S:g} s: "
          + ("met" if fast else "NOT met" if real else "not judged (another list, or no --scale 1)"))
    ok = ok and (fast or not real)
    if len(rows) > 1:
        cpu = [1000 * r["cpu"] / r["pairs"] for r in (first, last)]
        rss = [r["rss"] / 1024 / r["pairs"] for r in (first, last)]
        flat = cpu[1] <= FLAT * cpu[0] + SLACK_MS and rss[1] <= FLAT * rss[0] + SLACK_KB
        print(f"target: driver CPU and RSS per pair flat from x{first['size']} to x{last['size']} "
              f"(within {FLAT}x + {SLACK_MS:g} ms / {SLACK_KB:g} kB): {cpu[0]:.2f} -> {cpu[1]:.2f} ms, "
              f"{rss[0]:.1f} -> {rss[1]:.1f} kB: {'met' if flat else 'NOT met'}")
        ok = ok and flat
    if not all(r["ok"] for r in rows):
        print("some pairs did not end done")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default=str(REFERENCE / "pairs" / "CTX_stereo_pair.txt"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scale", type=int, nargs="+", default=[1], help="sizes, in copies of the list (1 10)")
    parser.add_argument("--profile", help="cProfile the driver into this file (one size only)")
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)  # a child run
    args = parser.parse_args()
    if args.size:
        print(json.dumps(child(args)))
        return 0
    rows = []
    for size in args.scale:
        cmd = [sys.executable, __file__, "--pairs", args.pairs, "--workers", str(args.workers), "--size", str(size)]
        if args.profile:
            cmd += ["--profile", args.profile]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return 0 if report(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
