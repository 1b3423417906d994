"""Machines that share no filesystem, on one machine: a multi-host dask deployment for tests.

:class:`MultiHost` starts a ``dask scheduler`` and ``dask worker --nanny``
processes (the CLI, as ``cluster/start-worker.sh`` deploys them) and the
``ctxdask batch`` driver, each as its own "host": a new mount and UTS
namespace (``unshare -m -u --propagation private``, entered through
:mod:`hostenv`) with

* a private ``/tmp`` (bound from ``<area>/tmp``),
* a private home ``MOUNTS/home`` (``$HOME``: ``~/.config/dask/ctxdask.yaml``,
  the download cache, the low-resolution DEM as installed data),
* a private scratch folder ``MOUNTS/scratch``, the worker's
  ``--local-directory`` (ctxdask's step work dirs go under it, as deployed),
* a private log folder ``MOUNTS/log`` (the stand-ins' call log, tiles started),
* its own host name and loopback address (127.0.0.2, 127.0.0.3, ...),

so every host sees the same paths with other contents: a path that names a
file on another host is a missing file there, as between real machines. The
test reads each host's ``<area>`` from outside. The harness's own folder is
hidden inside every namespace; EDRs come only over HTTP from a server on
127.0.0.1 (:class:`EDRServer`).

Used by ``tests/multihost`` and ``benchmarks/tile_scratch.py``.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping

import psutil
import yaml

from ..conftest import _RangeRequestHandler
from ..tools.conftest import STANDINS, standin_path

ROOT = pathlib.Path(__file__).resolve().parents[2]
HOSTENV = pathlib.Path(__file__).with_name("hostenv.py")
ASP37 = STANDINS / "asp37"
#: mount points: the same paths on every host (each namespace binds its own folders there)
MOUNTS = pathlib.Path("/var/tmp/ctxdask-multihost")
SCRATCH, HOME, LOG = MOUNTS / "scratch", MOUNTS / "home", MOUNTS / "log"
#: dask's own lock files in a worker's --local-directory (its dask-scratch-space)
DASK_LOCKS = (".lock", ".dirlock")
DEM_NAME = "mola_megdr.tif"
#: product ids of the multi-host tests and benchmarks
IDS = ["P02_001981_1823_XI_02N356W", "P03_002258_1817_XI_01N356W", "B10_013341_1010_XN_79S172W",
       "D10_031011_1864_XI_06N201W"]
#: workers: host name -> loopback address
WORKERS = {"w1": "127.0.0.2", "w2": "127.0.0.3", "w3": "127.0.0.4"}


def tiny_edr(path, product_id) -> None:
    """The batch tests' EDR: 16 lines x 128 samples (tests/batch/conftest.py make_images)."""
    from ctxdask.testing import make_edr

    make_edr(path, lines=16, line_samples=128)


def unavailable() -> str | None:
    """Why the harness cannot run here (not root, no ``unshare`` or ``mount``), or None."""
    if os.geteuid() != 0:
        return "the multi-host harness needs root (mount namespaces with bind mounts)"
    missing = [name for name in ("unshare", "mount") if shutil.which(name) is None]
    if missing:
        return f"util-linux's {' and '.join(missing)} not installed"
    return None


def kept_folders() -> list[str]:
    """The project and its Python environment where they live under ``/tmp`` (a CI clone):
    every host replaces ``/tmp`` with its own, so these are bound back at their paths."""
    tmp = pathlib.Path("/tmp")
    folders = {str(p) for p in (ROOT, pathlib.Path(sys.prefix).resolve()) if tmp in p.resolve().parents}
    # a folder inside another kept one comes with it
    return sorted(f for f in folders if not any(f != g and f.startswith(g + os.sep) for g in folders))


def base_config(*, tiled: bool = True, tile_size: int = 16) -> dict:
    """The ``ctxdask`` settings every host reads from ``~/.config/dask/ctxdask.yaml``: the ISIS chain
    of stand-ins, small tiles, short deadlines and grace periods, fast downloads."""
    return {"ctxdask": {
        "tools": {
            "calibration": "isis", "grace-period": 1, "watchdog-grace": 1,
            "timeouts": {"stereo_tile": 60, "dem_mosaic": 60, "parallel_stereo": 120},
            "asp": {"stereo-mode": "tiled" if tiled else "monolithic", "tiles": {"size": tile_size, "padding": 4},
                    "dem-spacing": 12.0, "lowres-dem": str(HOME / DEM_NAME)},
        },
        "batch": {"progress": False, "watchdog-margin": 30, "stall-timeout": 60},
        "catalog": {"download": {"requests-per-second": 100.0, "retries": 1, "backoff": 0.1,
                                 "connect-timeout": 10, "read-timeout": 30}},
    }}


def write_lowres_dem(path: pathlib.Path) -> pathlib.Path:
    """The low-resolution DEM the tiled tests use (tests/batch/tiled.py): 16 x 16, lon/lat, -1200 m."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=16, height=16, count=1, dtype="float32",
                       crs="+proj=longlat +a=3396190 +b=3396190 +no_defs",
                       transform=from_origin(354.0, 2.3, 0.1, 0.1)) as dst:
        dst.write(np.full((1, 16, 16), -1200.0, dtype="float32"))
    return path


class EDRServer:
    """A real HTTP server on 127.0.0.1 (Range requests honoured) serving one folder, in a thread."""

    def __init__(self, folder: pathlib.Path):
        self.folder = folder
        self.log: list = []
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeRequestHandler.make(folder, self.log))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclasses.dataclass
class Host:
    """One simulated machine: its folders outside (``area``), address, process group, dask address."""

    name: str
    ip: str
    area: pathlib.Path
    proc: subprocess.Popen | None = None
    address: str | None = None
    killed: bool = False

    @property
    def scratch(self) -> pathlib.Path:
        return self.area / "scratch"

    @property
    def log(self) -> pathlib.Path:
        return self.area / "log"

    @property
    def home(self) -> pathlib.Path:
        return self.area / "home"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def scratch_files(self) -> list[str]:
        """Files left in this host's scratch, relative to it, dask's own lock files left out.

        Everything ctxdask makes there counts: the batch's step work dirs live in
        ``<local-directory>/dask-scratch-space/worker-*/ctxdask-steps`` (the
        worker's local directory, ``tools.work-dir`` being unset as deployed).
        """
        found = []
        for folder, _dirs, files in os.walk(self.scratch):
            rel = os.path.relpath(folder, self.scratch)
            found += [os.path.normpath(os.path.join(rel, f)) for f in files if not f.endswith(DASK_LOCKS)]
        return sorted(found)

    def scratch_bytes(self) -> int:
        """Bytes of ctxdask's files in this host's scratch (dask's own folder left out)."""
        total = 0
        for rel in self.scratch_files():
            try:
                total += os.lstat(self.scratch / rel).st_size
            except FileNotFoundError:  # removed while we looked
                pass
        return total

    def calls(self) -> list[dict]:
        """Every stand-in program this host ran (``CTXDASK_STANDIN_CALLS``), in order."""
        path = self.log / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def tiles_started(self) -> list[str]:
        path = self.log / "tiles-started.txt"
        return path.read_text().splitlines() if path.exists() else []


class MultiHost:
    """A scheduler, workers and drivers, each a host of its own (see the module docstring).

    Parameters
    ----------
    root : path
        The harness's folder (hidden inside every host): host areas, EDRs, logs.
    config : dict
        The settings every host reads (``~/.config/dask/ctxdask.yaml``), default :func:`base_config`.
    env : mapping
        Extra environment of every worker (and so of the programs it runs), e.g. stand-in settings.
    """

    def __init__(self, root: pathlib.Path, *, config: dict | None = None, env: Mapping[str, str] | None = None,
                 threads: int = 2):
        for mount in (SCRATCH, HOME, LOG):
            mount.mkdir(parents=True, exist_ok=True)
        self.root = pathlib.Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = config or base_config()
        self.env = dict(env or {})
        self.threads = threads
        self.token = uuid.uuid4().hex
        self.dem = write_lowres_dem(self.root / DEM_NAME)
        self.www = self.root / "www"
        self.www.mkdir(exist_ok=True)
        self.server = EDRServer(self.www)
        self.scheduler: Host | None = None
        self.workers: dict[str, Host] = {}
        self.retired: list[Host] = []
        self.driver = Host("driver", "127.0.0.1", self.root / "driver")
        self._prepare_area(self.driver.area, fresh=True)
        self._generation = 0
        self._client = None

    # -- hosts -------------------------------------------------------------------------------

    def _prepare_area(self, area: pathlib.Path, *, fresh: bool) -> None:
        if fresh and area.exists():
            shutil.rmtree(area)
        for sub in ("tmp", "scratch", "home", "log", "home/.config/dask"):
            (area / sub).mkdir(parents=True, exist_ok=True)
        (area / "tmp").chmod(0o1777)
        (area / "home/.config/dask/ctxdask.yaml").write_text(yaml.safe_dump(self.config))
        shutil.copyfile(self.dem, area / "home" / DEM_NAME)

    def environment(self) -> dict[str, str]:
        """The environment of every host's program: stand-ins first on PATH, this worktree importable."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DASK_", "CTXDASK_STANDIN_")) and k not in ("TMPDIR", "PYTHONPATH")}
        env.update(PATH=os.pathsep.join([str(ASP37), standin_path()]), PYTHONPATH=str(ROOT), HOME=str(HOME),
                   CTXDASK_MULTIHOST=self.token, CTXDASK_STANDIN_CALLS=str(LOG / "calls.jsonl"),
                   CTXDASK_STANDIN_TILE_STARTED=str(LOG / "tiles-started.txt"),
                   DASK_DISTRIBUTED__LOGGING__DISTRIBUTED="info", PYTHONUNBUFFERED="1")
        env.update(self.env)
        return env

    def _spawn(self, host: Host, command: list[str], log_name: str, *, scratch: bool = True) -> subprocess.Popen:
        binds = [f"{host.area / 'home'}={HOME}", f"{host.area / 'log'}={LOG}"]
        if scratch:
            binds.append(f"{host.area / 'scratch'}={SCRATCH}")
        binds.append(f"{host.area / 'tmp'}=/tmp")  # last: the sources may live under /tmp
        argv = ["unshare", "-m", "-u", "--propagation", "private", "--", sys.executable, str(HOSTENV),
                "--hostname", f"mh-{host.name}", *(f"--bind={b}" for b in binds), f"--hide={self.root}",
                *(f"--keep={k}" for k in kept_folders()), "--",
                *command]
        with open(host.area / log_name, "ab") as log:
            return subprocess.Popen(argv, env=self.environment(), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True, cwd="/")

    def start_scheduler(self, timeout: float = 60) -> str:
        """Start ``dask scheduler`` on 127.0.0.1 in its own namespace; return its address."""
        host = Host("scheduler", "127.0.0.1", self.root / "hosts" / "scheduler")
        self._prepare_area(host.area, fresh=True)
        dask = os.path.join(os.path.dirname(sys.executable), "dask")
        host.proc = self._spawn(host, [dask, "scheduler", "--host", host.ip, "--port", "0", "--no-dashboard",
                                       "--scheduler-file", str(LOG / "scheduler.json")], "scheduler.log")
        contact = host.log / "scheduler.json"
        deadline = time.monotonic() + timeout
        while not contact.exists():
            if host.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dask scheduler did not start: {(host.area / 'scheduler.log').read_text()}")
            time.sleep(0.1)
        time.sleep(0.2)  # the file is written whole, but give it a beat
        host.address = json.loads(contact.read_text())["address"]
        self.scheduler = host
        return host.address

    @property
    def client(self):
        """A monitoring client in the test process (worker lists only; the driver has its own)."""
        if self._client is None:
            from distributed import Client

            self._client = Client(self.scheduler.address, timeout=30)
        return self._client

    def start_worker(self, name: str, ip: str, *, fresh: bool = True, wait: float = 90) -> Host:
        """Start ``dask worker --nanny`` as host ``name`` on ``ip``; ``fresh``: new empty folders,
        else the folders ``name`` had before (its scratch kept, as on a rebooted machine)."""
        self._generation += 1
        old = self.workers.get(name)
        if old is not None:
            if old.alive:
                raise RuntimeError(f"host {name} is still running")
            self.retired.append(old)
        area = self.root / "hosts" / (f"{name}.{self._generation}" if fresh or old is None else old.area.name)
        self._prepare_area(area, fresh=fresh or old is None)
        host = Host(name, ip, area)
        dask = os.path.join(os.path.dirname(sys.executable), "dask")
        before = set(self.client.scheduler_info()["workers"])
        host.proc = self._spawn(host, [
            dask, "worker", self.scheduler.address, "--nanny", "--host", ip, "--name", f"{name}.{self._generation}",
            "--nthreads", str(self.threads), "--nworkers", "1", "--resources", "stereo=1",
            "--local-directory", str(SCRATCH), "--no-dashboard", "--death-timeout", "60"], "worker.log")
        deadline = time.monotonic() + wait
        while True:
            new = [a for a, info in self.client.scheduler_info()["workers"].items()
                   if a not in before and info.get("name") == f"{name}.{self._generation}"]
            if new:
                host.address = new[0]
                break
            if host.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {name} did not start: {(area / 'worker.log').read_text()[-3000:]}")
            time.sleep(0.2)
        self.workers[name] = host
        return host

    def kill_worker(self, name: str, wait: float = 30) -> Host:
        """SIGKILL host ``name``'s whole process group (nanny and worker, no goodbye)."""
        host = self.workers[name]
        os.killpg(host.proc.pid, signal.SIGKILL)
        host.proc.wait(timeout=wait)
        host.killed = True
        deadline = time.monotonic() + wait
        while host.address in self.client.scheduler_info()["workers"] and time.monotonic() < deadline:
            time.sleep(0.1)
        return host

    def live_addresses(self) -> set[str]:
        return set(self.client.scheduler_info()["workers"])

    def all_hosts(self) -> list[Host]:
        """Every worker host ever started, retired generations first."""
        return [*self.retired, *self.workers.values()]

    # -- the driver --------------------------------------------------------------------------

    @property
    def out(self) -> pathlib.Path:
        """The driver's output folder, seen from outside."""
        return self.driver.home / "out"

    @property
    def database(self) -> pathlib.Path:
        return self.out / "ctxdask-batch.sqlite"

    def serve_edrs(self, images: Iterable[str], make) -> pathlib.Path:
        """EDRs ``<id>.IMG`` made by ``make(path, id)`` in the served folder; the driver's URL list."""
        urls = []
        for pid in images:
            path = self.www / f"{pid}.IMG"
            if not path.exists():
                make(path, pid)
            urls.append(f"{self.server.url}/{pid}.IMG")
        (self.driver.home / "urls.txt").write_text("".join(u + "\n" for u in urls))
        return self.driver.home / "urls.txt"

    def start_all(self, pairs, make=tiny_edr) -> MultiHost:
        """The scheduler, the :data:`WORKERS`, the pairs' EDRs made by ``make`` and served, the pair list."""
        self.start_scheduler()
        for name, ip in WORKERS.items():
            self.start_worker(name, ip)
        self.serve_edrs(sorted({i for p in pairs for i in p}), make)
        self.write_pairs(pairs)
        return self

    def write_pairs(self, pairs) -> pathlib.Path:
        path = self.driver.home / "pairs.txt"
        path.write_text("".join(f"{a} {b}\n" for a, b in pairs))
        return path

    def driver_argv(self, *extra: str) -> list[str]:
        """``ctxdask batch`` as the driver host sees it: pair list, URL list, output folder in its home."""
        return [sys.executable, "-m", "ctxdask", "batch", str(HOME / "pairs.txt"), "--out", str(HOME / "out"),
                "--url-list", str(HOME / "urls.txt"), "--scheduler", self.scheduler.address, "--no-progress",
                *extra]

    def start_driver(self, *extra: str) -> subprocess.Popen:
        """Start the driver in its own namespace (private /tmp and home, no scratch of any worker)."""
        if self.driver.alive:
            raise RuntimeError("a driver is already running")
        self.driver.proc = self._spawn(self.driver, self.driver_argv(*extra), "driver.log", scratch=False)
        return self.driver.proc

    def run_driver(self, *extra: str, timeout: float = 600) -> int | None:
        """Run the driver to its end; return its exit code (None: killed after ``timeout`` seconds)."""
        self.start_driver(*extra)
        return self.wait_driver(timeout)

    def wait_driver(self, timeout: float = 600) -> int | None:
        """The running driver's exit code; after ``timeout`` seconds it is SIGKILLed and None returned
        (the test goes on to check what the batch left)."""
        try:
            return self.driver.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_driver()
            with open(self.driver.area / "driver.log", "a") as log:
                log.write(f"\n[harness] the driver ran longer than {timeout:g} s and was killed\n")
            return None

    def kill_driver(self) -> None:
        os.killpg(self.driver.proc.pid, signal.SIGKILL)
        self.driver.proc.wait(timeout=30)

    def driver_log(self) -> str:
        path = self.driver.area / "driver.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- what is left ----------------------------------------------------------------------

    def programs_left(self) -> list[psutil.Process]:
        """Live stand-in programs (and their watchdogs) started by this harness's hosts."""
        found = []
        mine = {h.proc.pid for h in (*self.all_hosts(), self.scheduler, self.driver) if h and h.proc}
        for proc in psutil.process_iter(["pid", "cmdline", "status"]):
            try:
                if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.info["pid"] in mine:
                    continue
                if proc.environ().get("CTXDASK_MULTIHOST") != self.token:
                    continue
                cmdline = " ".join(proc.info["cmdline"] or [])
                if str(STANDINS) in cmdline or "watchdog" in cmdline:
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    def wait_programs_gone(self, timeout: float = 15) -> list[psutil.Process]:
        """Stand-ins still running after ``timeout`` seconds (the watchdog grace is 1 s here)."""
        deadline = time.monotonic() + timeout
        left = self.programs_left()
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = self.programs_left()
        return left

    def close(self) -> None:
        """Stop every process this harness started (by process group) and the EDR server."""
        if self._client is not None:
            self._client.close()
        for host in (self.driver, *self.all_hosts(), self.scheduler):
            if host is not None and host.alive:
                os.killpg(host.proc.pid, signal.SIGKILL)
                host.proc.wait(timeout=30)
        self.server.close()
        # anything of ours still running (a program whose watchdog did not see its worker die)
        for proc in self.programs_left():
            try:
                proc.kill()
            except psutil.Error:
                pass
