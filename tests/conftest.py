"""Shared test fixtures."""

from __future__ import annotations

import os
import pathlib

import pytest

#: public reference data (real CTX labels, an ISIS cube, a pair list) beside the project
REFERENCE = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> pathlib.Path:
    """The ``../shared/reference`` folder; tests using it skip when it is absent."""
    if not REFERENCE.is_dir():
        pytest.skip("../shared/reference is not beside the project")
    return REFERENCE


class _RangeRequestHandler:
    """Factory for a static-file handler that honours HTTP Range requests and logs them."""

    @staticmethod
    def make(root: pathlib.Path, log: list):
        import http.server
        import re

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _target(self):
                path = root / self.path.lstrip("/").split("?")[0]
                return path if path.is_file() else None

            def do_HEAD(self):
                self._serve(head=True)

            def do_GET(self):
                self._serve(head=False)

            def _serve(self, head: bool):
                target = self._target()
                rng = self.headers.get("Range")
                log.append((self.command, self.path, rng))
                if target is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = target.read_bytes()
                start, stop, status = 0, len(data), 200
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
                if match:
                    start = int(match.group(1))
                    stop = min(int(match.group(2)) + 1, len(data)) if match.group(2) else len(data)
                    status = 206
                body = data[start:stop]
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(data)}")
                self.end_headers()
                if not head:
                    self.wfile.write(body)

        return Handler


@pytest.fixture
def http_server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving ``tmp_path / "www"`` with Range support.

    Yields ``(base_url, root_folder, request_log)``; the log holds
    ``(method, path, range header)`` tuples.
    """
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()
    log: list = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeRequestHandler.make(root, log))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root, log
    finally:
        server.shutdown()
        server.server_close()


class CountingScheduler:
    """A dask scheduler (for ``dask.config.set(scheduler=...)``) that counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, dsk, keys, **kwargs):
        import dask

        self.calls += 1
        return dask.get(dsk, keys, **kwargs)


@pytest.fixture
def compute_counter():
    """Count every compute of the test: dask's scheduler is a :class:`CountingScheduler`."""
    import dask

    counter = CountingScheduler()
    with dask.config.set(scheduler=counter):
        yield counter


class RawRead(tuple):
    """One raw read: ``(start, length, buffer)`` with ``buffer`` a weak reference to the bytes read,
    and ``alive_before``, how many earlier buffers were still alive when it was made."""

    def __new__(cls, start, length, buffer, alive_before):
        self = super().__new__(cls, (start, length, buffer))
        self.start, self.length, self.buffer, self.alive_before = start, length, buffer, alive_before
        return self


@pytest.fixture
def raw_reads(monkeypatch):
    """Record every byte-range read of EDR pixels (``ctxdask.rawio.read_range``) as a :class:`RawRead`."""
    import weakref

    from ctxdask import rawio

    log: list[RawRead] = []
    original = rawio.read_range

    def recording(source, start, length, storage_options=None):
        alive = sum(read.buffer() is not None for read in log)
        data = original(source, start, length, storage_options)
        log.append(RawRead(start, length, weakref.ref(data), alive))
        return data

    monkeypatch.setattr(rawio, "read_range", recording)
    return log


def pytest_runtest_setup(item):
    """``@pytest.mark.requires_tool("name")``: skip when the program is missing, fail instead
    when it is listed in ``CTXDASK_REQUIRE_TOOLS`` (``.ci/run`` installs and requires them, so a
    broken install step cannot hide behind a skip)."""
    import os
    import shutil

    required = os.environ.get("CTXDASK_REQUIRE_TOOLS", "").split()
    for mark in item.iter_markers("requires_tool"):
        name = mark.args[0]
        if shutil.which(name) is None:
            if name in required:
                pytest.fail(f"{name} is required by CTXDASK_REQUIRE_TOOLS but is not installed")
            pytest.skip(f"{name} is not installed")


#: the longest test files of a CI run (``pytest -n auto --dist loadfile`` on 2 cores, the seconds
#: they took there), longest first; they are run first: when the queue of files runs dry, only
#: short files are left, and no worker waits alone for a long one at the end. Files of the fault
#: scenarios alternate with the multi-host ones so that two multi-host deployments (four dask
#: processes each) seldom run at once.
LONGEST_FIRST = [
    "tests/multihost/test_batch_driver_killed.py",  # 231 s
    "tests/batch/test_faults.py",  # 215 s
    "tests/multihost/test_batch_worker_killed.py",  # 231 s
    "tests/web/test_browser.py",  # 213 s
    "tests/multihost/test_batch_workers_restarted.py",  # 214 s
    "tests/batch/test_faults_signals.py",  # 213 s
    "tests/multihost/test_batch.py",  # 202 s
    "tests/batch/test_faults_driver_killed.py",  # 182 s
    "tests/tools/test_matrix_batch.py",  # 146 s
    "tests/batch/test_faults_ctrl_c.py",  # 165 s
    "tests/batch/test_real_list.py",  # 138 s
    "tests/tools/test_matrix_tiled_align.py",
    "tests/batch/test_driver.py",  # 115 s
    "tests/tools/test_matrix_tiled.py",
    "tests/batch/test_tiles_driver.py",  # 81 s
    "tests/tools/test_matrix.py",
    "tests/test_cluster_deploy.py",  # 73 s
    "tests/web/test_concurrency.py",  # 64 s
    "tests/batch/test_staging.py",  # 60 s
    "tests/commands/test_mistakes.py",  # 55 s
    "tests/tools/test_tasks.py",  # 50 s
    "tests/radiometry/test_flatbuild.py",  # 49 s
    "tests/report/test_report.py",  # 48 s
]


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: half again as many workers as cores.

    Measured on the 2-core CI machine with the same code: 3 workers ran the whole CI in
    1,626 s, 2 workers in 1,738 s. The long files spend part of their time waiting for dask
    processes to start, for deadlines and for stand-ins' sleeps, and a third worker fills it.
    """
    return max(2, (os.cpu_count() or 1) * 3 // 2)


def pytest_collection_modifyitems(config, items):
    """The files of :data:`LONGEST_FIRST` first, in its order; every file's tests stay together and
    in order, the other files in collection order (pyproject.toml turns off pytest-xdist's own
    reordering by number of tests, ``--no-loadscope-reorder``, which put these files last)."""
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    order = {item: i for i, item in enumerate(items)}
    items.sort(key=lambda item: (rank.get(item.nodeid.split("::")[0], len(rank)), order[item]))
