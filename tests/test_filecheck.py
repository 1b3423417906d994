"""What kind of thing a product source is (:mod:`ctxdask.filecheck`), through ``open_edr``."""

from __future__ import annotations

import os
import socket
import threading

import pytest

import ctxdask
from ctxdask.exceptions import MissingFileError, NotAFileError, UnreachableURLError, UnreadableFileError
from ctxdask.testing import make_edr

pytestmark = pytest.mark.timeout(60)  # a FIFO that blocked a reader would hang here


@pytest.mark.parametrize("make, error, match", [
    (lambda p: p.mkdir(), NotAFileError, "is a folder, not a regular file"),
    (lambda p: os.mkfifo(p), NotAFileError, r"is a named pipe \(FIFO\), not a regular file"),
    (lambda p: os.symlink(p.name, p), UnreadableFileError, "a loop of symbolic links"),
    (lambda p: os.symlink("gone.IMG", p), MissingFileError, "is a symbolic link to gone.IMG, which does not exist"),
    (lambda p: None, MissingFileError, "no such file"),
])
def test_local_sources_that_are_not_readable_files(tmp_path, make, error, match):
    path = tmp_path / "P02_001981_1823_XI_02N356W.IMG"
    make(path)
    with pytest.raises(error, match=match) as info:
        ctxdask.open_edr(path)
    assert info.value.path == str(path)
    assert ctxdask.validate(path).findings[0].check == "file"


def test_a_pipe_with_a_writer_waiting_is_refused_without_reading(tmp_path):
    """Even a FIFO someone writes into is never read: the check does not open it for reading."""
    fifo = tmp_path / "x.IMG"
    os.mkfifo(fifo)
    opened = threading.Event()

    def writer():
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader, as it should be
            return
        opened.set()
        os.close(fd)

    with pytest.raises(NotAFileError):
        ctxdask.open_edr(fifo)
    thread = threading.Thread(target=writer)
    thread.start()
    thread.join(5)
    assert not opened.is_set()


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
def test_character_devices_are_not_empty_files(device):
    if not os.path.exists(device):
        pytest.skip(f"{device} is not here")
    with pytest.raises(NotAFileError, match="is a character device"):
        ctxdask.open_edr(device)


def test_an_unreachable_server_is_not_a_missing_file():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    url = f"http://127.0.0.1:{port}/B10_013341_1010_XN_79S172W.IMG"
    with pytest.raises(UnreachableURLError, match="cannot reach the server .connection refused.") as info:
        ctxdask.open_edr(url)
    assert info.value.path == url


def test_a_file_the_server_does_not_have_is_missing(http_server):
    base, root, _ = http_server
    make_edr(root / "B10_013341_1010_XN_79S172W.IMG", lines=16, line_samples=128)
    assert ctxdask.open_edr(f"{base}/B10_013341_1010_XN_79S172W.IMG").sizes["line"] == 16
    with pytest.raises(MissingFileError, match="no such file on the server"):
        ctxdask.open_edr(f"{base}/P02_001981_1823_XI_02N356W.IMG")
