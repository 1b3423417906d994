"""Fixtures of the catalog tests: a fault-injecting HTTP server on 127.0.0.1, small EDRs.

The server serves files from memory with Range and If-Range support and an
ETag, and can be told, request by request, to misbehave: answer 503 (with
Retry-After), drop the connection part way through the body, stall longer
than the client's read timeout, serve a truncated or a corrupted body, ignore
the Range header, or answer 404. It records every request (method, path,
Range, If-Range, start time) and the most requests it had in flight at once.
Every handler wait is bounded and ends when the fixture stops the server.
"""

from __future__ import annotations

import hashlib
import http.server
import pathlib
import re
import socket
import sys
import threading
import time
from collections import deque

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # the cumindex writer beside this file

from ctxdask.catalog.download import DownloadSettings  # noqa: E402
from ctxdask.testing import make_edr  # noqa: E402


class FaultServer:
    """State of the fault-injecting server (the handler reads it)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, deque] = {}
        self.always: dict[str, tuple] = {}
        self.log: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.base_url = ""

    def add(self, name: str, data: bytes) -> str:
        """Serve ``data`` at ``/name``; return its URL."""
        self.files["/" + name] = data
        return f"{self.base_url}/{name}"

    def plan(self, name: str, *faults: tuple) -> None:
        """Misbehave on the next GETs of ``/name``, one fault per request, then behave."""
        self.faults.setdefault("/" + name, deque()).extend(faults)

    def gets(self, name: str) -> list[dict]:
        """The GET requests of ``/name``, in order."""
        return [r for r in self.log if r["path"] == "/" + name and r["method"] == "GET"]

    def next_fault(self, path: str) -> tuple:
        with self.lock:
            queue = self.faults.get(path)
            if queue:
                return queue.popleft()
        return self.always.get(path, ("ok",))


def _etag(data: bytes) -> str:
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'


def _make_handler(state: FaultServer):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10  # a stuck client cannot hold a server thread for long

        def log_message(self, *args):
            pass

        def do_HEAD(self):
            self.send_response(405)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            with state.lock:
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
                state.log.append({"method": "GET", "path": self.path, "range": self.headers.get("Range"),
                                  "if_range": self.headers.get("If-Range"), "time": time.monotonic(),
                                  "user_agent": self.headers.get("User-Agent")})
            try:
                self._get()
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                self.close_connection = True
            finally:
                with state.lock:
                    state.in_flight -= 1

        def _simple(self, status: int, extra: dict | None = None) -> None:
            self.send_response(status)
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _get(self):
            fault = state.next_fault(self.path)
            kind = fault[0]
            data = state.files.get(self.path)
            if data is None or kind == "404":
                return self._simple(404)
            if kind == "503":
                return self._simple(503, {"Retry-After": str(fault[1])} if len(fault) > 1 else None)
            if kind == "hold":  # occupy the request for a while before serving normally
                state.stop.wait(fault[1])
            if kind == "truncate":
                data = data[: fault[1]]
            if kind == "corrupt":
                data = bytearray(data)
                data[fault[1]] ^= 0xFF
                data = bytes(data)
            etag = _etag(state.files[self.path])  # the file's identity, whatever we do to the body
            start, status = 0, 200
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if_range = self.headers.get("If-Range")
            if match and kind != "ignore-range" and (if_range is None or if_range == etag):
                start = int(match.group(1))
                if start >= len(data):
                    return self._simple(416, {"Content-Range": f"bytes */{len(data)}"})
                status = 206
            if kind == "bad-range" and status == 206:
                start = max(0, start - 100)  # answer a range that is not the one asked for
            body = data[start:]
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if kind == "stall":  # headers sent, then silence longer than the client's read timeout
                self.wfile.write(body[: len(body) // 3])
                self.wfile.flush()
                state.stop.wait(fault[1])
                self.close_connection = True
                return
            if kind == "drop":  # part of the body, then the connection goes away
                self.wfile.write(body[: fault[1]])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def fault_server():
    """A :class:`FaultServer` listening on 127.0.0.1 (stopped and joined at teardown)."""
    state = FaultServer()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    server.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def fast_settings():
    """Download settings with short timeouts and backoffs, no rate limit to speak of."""
    return DownloadSettings.from_config(
        semaphore="ctxdask-test-downloads", max_concurrent=2, requests_per_second=1000.0, retries=4,
        backoff=0.01, backoff_max=0.05, connect_timeout=2.0, read_timeout=0.5, verify_attempts=3,
        checksum="reject", chunk_bytes=8192,
    )


PIDS = ["P01_001472_1747_XI_05S146W", "P01_001473_2479_XI_67N185W", "B10_013341_1010_XN_79S172W",
        "D10_031011_1864_XI_06N201W"]


@pytest.fixture(scope="session")
def edr_bytes(tmp_path_factory):
    """Small valid EDRs (32 lines x 5056 samples) keyed by product id."""
    folder = tmp_path_factory.mktemp("edrs")
    out = {}
    for i, pid in enumerate(PIDS):
        path = make_edr(folder / f"{pid}.IMG", lines=32, product_id=pid, seed=i)
        out[pid] = path.read_bytes()
    return out
