"""Shared test fixtures."""

from __future__ import annotations

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
