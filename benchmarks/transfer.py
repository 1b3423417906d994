"""Benchmark: moving a big file between machines over the dask connection, against a plain TCP copy.

A ``dask scheduler`` and two ``dask worker --no-nanny`` processes, A bound to
127.0.0.2 and B to 127.0.0.3, each with its own ``--local-directory`` (no
shared folder is used by the code measured); the driver is this process, with a
``distributed.Client``. A file of ``--size`` random bytes is made on A, then:

staged
    a task on B calls :func:`ctxdask.batch.staging.stage`, the way a step
    input made on another worker is pulled (sha256 asked of A, pinned
    byte-range reads, temporary name, rename);
delivered
    :meth:`ctxdask.batch.delivery.Deliverer.deliver` brings it into a folder
    of the driver, the way a product comes home.

Baselines of the same run: the floor, one TCP socket over loopback from
127.0.0.2 to 127.0.0.3 (``socket.sendfile`` into a receiver that writes the
file and fsyncs it), and ``rsync`` of the file between two folders when rsync
is installed (the row says so when it is not). Every copy is compared with
the source's sha256. A third row, the floor with both ends hashing the file
as the dask paths do, shows what the checksum costs on its own; a fourth,
the pinned byte-range reads of a pull from A to B with the bytes dropped,
what the dask connection carries at best with this chunk size and window.

Figures: MB/s (10^6 bytes), ratio to the TCP floor, peak RSS of worker A,
worker B, the scheduler and the driver during each path (``VmHWM``, reset
through ``/proc/<pid>/clear_refs`` before each path), how much each grew
over its RSS before the path, and the CPU seconds each used (less noisy than
wall time on a shared machine; the TCP rows run in the driver). ``--check-size`` repeats the dask paths with a
smaller file: the growth must not depend on the file size.

Target (issue 22, item 1): each path at least 0.8 of the floor; memory
bounded by chunk size x window, independent of file size. Exits 1 when missed.

Run: ``python benchmarks/transfer.py [--size 1G] [--check-size 256M] [--chunk-size 8M] [--window 4]``
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import pathlib
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(sys.executable).parent
HOST_A, HOST_B = "127.0.0.2", "127.0.0.3"
MiB = 1024 * 1024


def parse_size(text: str) -> int:
    """``256M`` / ``1G`` / ``4096`` -> bytes (binary units)."""
    units = {"K": 1024, "M": MiB, "G": 1024 * MiB}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


# ----------------------------------------------------------------- on the workers
def make_file(path: str, size: int) -> str:
    """Write ``size`` random bytes to ``path`` (on worker A); their sha256."""
    h = hashlib.sha256()
    block = os.urandom(8 * MiB)  # random once: the content only has to defeat nothing but compression
    with open(path, "wb") as f:
        for off in range(0, size, len(block)):
            piece = block[: min(len(block), size - off)]
            # vary each block so a chunk mix-up changes the checksum
            piece = off.to_bytes(8, "little") + piece[8:] if len(piece) >= 8 else piece
            h.update(piece)
            f.write(piece)
    return h.hexdigest()


def stage_on_worker(result, producer: str, chunk_size: int, window: int) -> tuple[str, float]:
    """Pull ``result`` from ``producer`` as a step input is (runs on worker B); the copy's path, seconds."""
    from ctxdask.batch.model import BatchContext
    from ctxdask.batch.staging import stage

    ctx = BatchContext(recipe=None, source=None, chunk_size=chunk_size, window=window)
    t0 = time.perf_counter()
    staged = stage(result, producer, ctx)
    return staged.outputs["data"], time.perf_counter() - t0


def reads_only(path: str, producer: str, size: int, chunk_size: int, window: int) -> float:
    """The pinned byte-range reads of a pull alone, bytes dropped (runs on B): the ceiling of the design."""
    import collections

    from distributed import worker_client

    from ctxdask.batch.delivery import read_range

    t0 = time.perf_counter()
    with worker_client() as client:
        offsets, inflight = collections.deque(range(0, size, chunk_size)), collections.deque()
        while offsets or inflight:
            while offsets and len(inflight) < window:
                off = offsets.popleft()
                inflight.append(client.submit(read_range, path, off, min(chunk_size, size - off), workers=[producer],
                                              allow_other_workers=False, pure=False, priority=100))
            inflight.popleft().result()
    return time.perf_counter() - t0


def sha256_of(path: str) -> str:
    from ctxdask.batch.model import sha256_file

    return sha256_file(path)


def remove(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


# ----------------------------------------------------------------- memory
def _status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class Watch:
    """Peak RSS and CPU seconds of some processes over one path: reset before, read after."""

    pids: dict[str, int]
    before: dict[str, int] = dataclasses.field(default_factory=dict)
    cpu_before: dict[str, float] = dataclasses.field(default_factory=dict)

    def start(self) -> None:
        for name, pid in self.pids.items():
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            self.before[name] = _status(pid, "VmRSS")
            self.cpu_before[name] = _cpu(pid)

    def peaks(self) -> dict[str, tuple[int, int, float]]:
        """name -> (peak RSS, growth over the RSS before, CPU seconds since)."""
        return {name: (_status(pid, "VmHWM"), _status(pid, "VmHWM") - self.before[name],
                       _cpu(pid) - self.cpu_before[name]) for name, pid in self.pids.items()}


# ----------------------------------------------------------------- baselines
def tcp_copy(src: str, dest: str, *, verify: bool = False) -> float:
    """One socket over loopback, ``sendfile`` from HOST_A into a receiver on HOST_B that writes ``dest``.

    With ``verify`` both ends also hash the file, as the dask paths do (the
    sender before it sends, the receiver as the bytes arrive): what the
    sha256 guarantee costs on top of the floor.
    """
    from ctxdask.batch.model import sha256_file

    server = socket.create_server((HOST_B, 0))
    port = server.getsockname()[1]
    done = threading.Event()

    def receive():
        conn, _ = server.accept()
        buf = bytearray(MiB)
        view = memoryview(buf)
        h = hashlib.sha256()
        with conn, open(dest, "wb") as out:
            while n := conn.recv_into(buf):
                if verify:
                    h.update(view[:n])
                out.write(view[:n])
            out.flush()
            os.fsync(out.fileno())
        done.set()

    t0 = time.perf_counter()
    thread = threading.Thread(target=receive)
    thread.start()
    if verify:
        sha256_file(src)
    with socket.create_connection((HOST_B, port), source_address=(HOST_A, 0)) as sock, open(src, "rb") as f:
        sock.sendfile(f)
    thread.join()
    server.close()
    return time.perf_counter() - t0


def rsync_copy(src: str, dest_dir: str) -> float | None:
    """``rsync`` of the file between two folders (None when rsync is not installed)."""
    rsync = shutil.which("rsync")
    if rsync is None:
        return None
    t0 = time.perf_counter()
    subprocess.run([rsync, "--whole-file", src, dest_dir + "/"], check=True)
    return time.perf_counter() - t0


# ----------------------------------------------------------------- cluster
class Cluster:
    """A scheduler and workers A and B as separate processes, each its own local directory."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.procs: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> Cluster:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        sfile = self.root / "scheduler.json"
        self.procs["scheduler"] = subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(sfile)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name, host in (("A", HOST_A), ("B", HOST_B)):
            local = self.root / f"worker-{name}"
            local.mkdir()
            self.procs[name] = subprocess.Popen(
                [str(BIN / "dask"), "worker", "--scheduler-file", str(sfile), "--host", host, "--no-nanny",
                 "--nthreads", "2", "--name", name, "--local-directory", str(local), "--no-dashboard"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.scheduler_file = str(sfile)
        return self

    def __exit__(self, *exc) -> None:
        for proc in reversed(self.procs.values()):
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


# ----------------------------------------------------------------- the run
def run_paths(client, addr: dict[str, str], tmp: pathlib.Path, size: int, args, watch: Watch,
              *, baselines: bool) -> list[tuple[str, float | None, dict]]:
    """Make the file on A and move it every way; rows of (path, seconds, peaks)."""
    from ctxdask.batch.delivery import Deliverer
    from ctxdask.batch.model import FileInfo, Outcome
    from ctxdask.tools.tasks import StepResult

    pin_a = dict(workers=[addr["A"]], allow_other_workers=False, pure=False)
    pin_b = dict(workers=[addr["B"]], allow_other_workers=False, pure=False)
    workdir = str(tmp / "worker-A" / "ctxdask-steps" / f"make-{size}")
    src = workdir + "/data.bin"
    os.makedirs(workdir, exist_ok=True)
    sha = client.submit(make_file, src, size, **pin_a).result()
    rows = []

    def check(path: str, on: dict) -> None:
        if client.submit(sha256_of, path, **on).result() != sha:
            raise SystemExit(f"{path}: sha256 differs from the source")

    if baselines:
        dest = str(tmp / "worker-B" / "tcp.bin")
        watch.start()
        rows.append(("TCP floor (1 socket, sendfile)", tcp_copy(src, dest), watch.peaks()))
        check(dest, pin_b)
        os.remove(dest)
        watch.start()
        rows.append(("TCP + sha256 at both ends", tcp_copy(src, dest, verify=True), watch.peaks()))
        os.remove(dest)
        watch.start()
        seconds = client.submit(reads_only, src, addr["A"], size, args.chunk_size, args.window, **pin_b).result()
        rows.append(("dask pinned reads only, A -> B (no write, no hash)", seconds, watch.peaks()))
        folder = tmp / "rsync-dest"
        folder.mkdir(exist_ok=True)
        watch.start()
        seconds = rsync_copy(src, str(folder))
        rows.append(("rsync between two folders" if seconds is not None else "rsync: not installed, skipped",
                     seconds, watch.peaks()))
        shutil.rmtree(folder)

    result = StepResult(key=f"make-{size}", step="make", program="bench", workdir=workdir, outputs={"data": src},
                        log_path="", returncode=0, duration=0.0, started="", host=HOST_A, cached=False,
                        fingerprint=f"{size}-{sha}")
    watch.start()
    t0 = time.perf_counter()
    staged, inside = client.submit(stage_on_worker, result, addr["A"], args.chunk_size, args.window,
                                   **pin_b).result()
    seconds = time.perf_counter() - t0
    rows.append((f"staged A -> B (stage, task {inside:.2f} s)", seconds, watch.peaks()))
    check(staged, pin_b)
    client.submit(remove, os.path.dirname(os.path.dirname(staged)), **pin_b).result()

    outcome = Outcome(key=f"make-{size}", step="make", subject="bench", status="done", worker=addr["A"],
                      files=(FileInfo(path=src, relpath="data.bin", size=size, sha256=sha),))
    deliverer = Deliverer(client, chunk_size=args.chunk_size, window=args.window, threads=1)
    home = tmp / "driver-out"
    watch.start()
    t0 = time.perf_counter()
    (delivered,) = deliverer.deliver(outcome, home)
    seconds = time.perf_counter() - t0
    rows.append(("delivered A -> driver (Deliverer)", seconds, watch.peaks()))
    deliverer.shutdown()
    if sha256_of(delivered.path) != sha:  # in blocks: the driver's peak RSS is what is measured
        raise SystemExit("delivered copy differs from the source")
    shutil.rmtree(home)
    os.remove(src)
    return rows


def print_rows(rows, size: int, floor: float | None) -> list[float]:
    names = list(rows[-1][2])
    print("| path | s | MB/s | / floor | " + " | ".join(f"{n} peak MB (+grew) cpu s" for n in names) + " |")
    print("|---|---|---|---|" + "---|" * len(names))
    ratios = []
    for label, seconds, peaks in rows:
        if seconds is None:
            print(f"| {label} | - | - | - | " + " | ".join("-" for _ in names) + " |")
            continue
        ratio = floor / seconds if floor else float("nan")
        if label.startswith(("staged", "delivered")):
            ratios.append(ratio)
        mem = " | ".join(f"{peaks[n][0] / 1e6:.0f} (+{peaks[n][1] / 1e6:.0f}) {peaks[n][2]:.1f}" for n in names)
        print(f"| {label} | {seconds:.2f} | {size / seconds / 1e6:.0f} | {ratio:.2f} | {mem} |")
    return ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G", help="file size (1G, 256M, ...)")
    parser.add_argument("--check-size", default="256M", help="a second, smaller size for the memory check ('' skips)")
    parser.add_argument("--chunk-size", default=None, help="bytes per chunk (default: batch.chunk-size)")
    parser.add_argument("--window", type=int, default=None, help="chunks in flight (default: batch.chunk-window)")
    parser.add_argument("--direct", action="store_true", help="the driver's client gathers from workers directly")
    args = parser.parse_args()

    from distributed import Client

    from ctxdask.settings import current

    batch = current().batch
    args.chunk_size = parse_size(args.chunk_size) if args.chunk_size else batch.chunk_size
    args.window = args.window or batch.chunk_window
    sizes = [parse_size(args.size)] + ([parse_size(args.check_size)] if args.check_size else [])
    load = os.getloadavg()
    print(f"{os.cpu_count()} cores, load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; chunk {args.chunk_size / MiB:g} "
          f"MiB x window {args.window} = {args.chunk_size * args.window / MiB:g} MiB in flight per file")
    ok = True
    with tempfile.TemporaryDirectory(prefix="ctxdask-transfer-") as tmp, Cluster(pathlib.Path(tmp)) as cluster:
        tmp = pathlib.Path(tmp)
        while not os.path.exists(cluster.scheduler_file):
            time.sleep(0.1)
        with Client(scheduler_file=cluster.scheduler_file, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            if args.direct:
                client.direct_to_workers = True
            addr = {info["name"]: a for a, info in client.scheduler_info()["workers"].items()}
            pids = {name: cluster.procs[name].pid for name in ("A", "B", "scheduler")} | {"driver": os.getpid()}
            watch = Watch(pids)
            # imports and connections on every side first: they are paid once per worker, not per file
            run_paths(client, addr, tmp, 8 * MiB, args, watch, baselines=False)
            growth: dict[int, dict[str, int]] = {}
            for i, size in enumerate(sizes):
                rows = run_paths(client, addr, tmp, size, args, watch, baselines=i == 0)
                floor = rows[0][1] if i == 0 else floor  # noqa: F821 - set on the first size
                floor_size = sizes[0]
                print(f"\n{size / MiB:g} MiB" + ("" if i == 0 else f" (memory check; floor of the {floor_size / MiB:g} "
                                                                   f"MiB run scaled to this size)"))
                scaled = floor * size / floor_size
                ratios = print_rows(rows, size, scaled)
                if i == 0:
                    ok &= all(r >= 0.8 for r in ratios)
                growth[size] = {n: max(peaks[n][1] for label, s, peaks in rows if label.startswith(("staged",
                                                                                                     "delivered")))
                                for n in pids}
    bound = args.chunk_size * args.window
    print(f"\nrss growth over the dask paths, by size (bound: chunk x window = {bound / 1e6:.0f} MB plus a "
          f"chunk being hashed/written):")
    for size, grew in growth.items():
        print(f"  {size / MiB:g} MiB: " + ", ".join(f"{n} +{g / 1e6:.0f} MB" for n, g in grew.items()))
    mem_ok = all(g <= 3 * bound + 64 * MiB for grew in growth.values() for g in grew.values())
    driver_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"driver peak RSS over the whole run (getrusage): {driver_peak / 1e6:.0f} MB")
    print(f"target: every path >= 0.8 of the TCP floor: {'met' if ok else 'NOT met'}; "
          f"memory bounded by chunk x window: {'met' if mem_ok else 'NOT met'}")
    return 0 if ok and mem_ok else 1


if __name__ == "__main__":
    sys.exit(main())
