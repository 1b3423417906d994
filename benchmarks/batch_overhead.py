"""Driver overhead of ``ctxdask batch``: the real pair list with steps that do nothing.

1,540 pairs (2,524 images) on a 2-worker LocalCluster. Fetch is a no-op source
and every recipe step a no-op runner, so what is measured is the batch itself:
planning, task submission, results through ``as_completed``, the tracking
database, the dependency chains (fetch -> validate -> 4 image steps, one dask
task per image; then 3 pair steps, one task each) and the scheduler round
trips. Validation is the real one, on 16-line
EDRs (it parses every label). The batch's quality steps (real image metrics and
DEM products) are switched off: they are work, not overhead. Target: the whole
list in under 60 s.

Run::

    .venv/bin/python benchmarks/batch_overhead.py [--pairs FILE] [--workers 2]
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import socket
import sys
import tempfile
import time

REFERENCE = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def noop_runner(call, *upstream, options):
    """A recipe step that does nothing but say it succeeded."""
    from ctxdask.tools.tasks import StepResult

    return StepResult(key=call.key, step=call.step, program=call.program, workdir="", outputs={},
                      log_path="", returncode=0, duration=0.0, started="", host=socket.gethostname(),
                      cached=False, fingerprint=call.key)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default=str(REFERENCE / "pairs" / "CTX_stereo_pair.txt"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import dask
    from distributed import Client, LocalCluster

    from ctxdask.batch import read_pairs, run_batch
    from ctxdask.testing import make_edr

    pairs = read_pairs(args.pairs)
    with tempfile.TemporaryDirectory(prefix="ctxdask-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        t0 = time.perf_counter()
        for pid in pairs.images:
            make_edr(tmp / "edr" / f"{pid}.IMG", lines=16, line_samples=128)
        print(f"{len(pairs)} pairs, {len(pairs.images)} images ({len(pairs.rejected)} lines skipped); "
              f"EDRs written in {time.perf_counter() - t0:.1f} s")
        with LocalCluster(n_workers=args.workers, threads_per_worker=2, processes=True,
                          resources={"stereo": 1}, dashboard_address=":0",
                          silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            t0 = time.perf_counter()
            # quality steps are real work (image metrics, DEM products), not driver overhead
            with dask.config.set({"ctxdask.batch.quality": False}):
                summary = run_batch(pairs, tmp / "out", source=tmp / "edr", client=client, runner=noop_runner,
                                    settings={"batch.deliver": [], "batch.progress": False})
            elapsed = time.perf_counter() - t0
        print(summary)
        from ctxdask.tracking import BatchView

        with BatchView(summary.database) as view:
            steps = sum(view.counts("steps").values())
        ok = summary.ok
        print(f"\n{elapsed:.1f} s for {len(pairs)} pairs ({steps} steps, {len(summary.failures)} failed): "
              f"{len(pairs) / elapsed:.1f} pairs/s, {1000 * elapsed / len(pairs):.1f} ms per pair, "
              f"{1000 * elapsed / steps:.2f} ms per step on {args.workers} workers")
        print(f"target: the whole list in under 60 s: {'met' if elapsed < 60 and ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
