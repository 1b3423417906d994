"""What kind of thing a product source is, and one-line errors when it cannot be read.

Before a product is opened its source is checked here: a local path must be a
regular file this process may read (a folder, a named pipe that would block the
reader, a device, a loop of symbolic links or a file without read permission is
refused, naming the file and the problem), and a URL's server must answer (a
refused connection is told apart from "no such file"). :func:`source_errors`
gives the same one-line errors for OS and network failures during later reads.
Imports neither numpy nor dask (:mod:`ctxdask.pds3` uses it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator

import fsspec

from ctxdask.exceptions import (
    CTXError,
    MissingFileError,
    NotAFileError,
    UnreachableURLError,
    UnreadableFileError,
)

__all__ = ["checked_size", "is_remote", "local_path", "source_errors"]

# what each kind of non-regular file is called in a message
_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def is_remote(source: str) -> bool:
    """True for URLs that fsspec must open (anything but plain or ``file://`` paths)."""
    protocol, _ = fsspec.core.split_protocol(source)
    return protocol not in (None, "file", "local")


def local_path(source: str) -> str:
    """The path of a plain or ``file://`` source."""
    return source[len("file://") :] if source.startswith("file://") else source


def checked_size(fs: fsspec.AbstractFileSystem, path: str, source: str) -> int | None:
    """Size in bytes of a product source that can be read by byte range, checked first.

    A local path must be a regular file this process may read: a folder, a named
    pipe (which would block a reader), a device, a symbolic-link loop or a file
    without read permission is refused here, before anything opens it for
    reading. A URL must answer; a server that cannot be reached is told apart
    from one that says the file is not there.

    Returns
    -------
    int or None
        The size; ``None`` when a server does not say.

    Raises
    ------
    MissingFileError, NotAFileError, UnreadableFileError, UnreachableURLError
    """
    if not is_remote(source):
        return _local_size(local_path(source), source)
    with source_errors(source):
        info = fs.info(path)
    if info.get("type") == "directory":
        raise NotAFileError(source, "is a folder, not a file")
    return info.get("size")


@contextlib.contextmanager
def source_errors(source: str) -> Iterator[None]:
    """Turn the OS and network errors of reading ``source`` into one-line CTX errors."""
    try:
        yield
    except CTXError:
        raise
    except OSError as exc:
        raise _explain(exc, source) from None
    except Exception as exc:  # aiohttp's response and timeout errors are not OSErrors
        error = _network_error(exc, source)
        if error is None:
            raise
        raise error from None


def _local_size(path: str, source: str) -> int:
    with source_errors(source):
        info = os.stat(path)
    kind = _KINDS.get(stat.S_IFMT(info.st_mode))
    if kind is not None:
        raise NotAFileError(source, f"is {kind}, not a regular file; give the product file itself")
    # open (never read) to learn whether this process may: os.access would ask about the real,
    # not the effective, user; O_NONBLOCK so a file swapped for a pipe since the stat cannot block
    with source_errors(source):
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    return info.st_size


def _explain(exc: OSError, source: str) -> CTXError:
    """A CTX error for an OSError met while opening or reading ``source``."""
    network = _network_error(exc, source)
    if network is not None:
        return network
    code = exc.errno
    if code == errno.ENOENT or isinstance(exc, FileNotFoundError):
        if not is_remote(source) and os.path.islink(local_path(source)):
            target = os.readlink(local_path(source))
            return MissingFileError(source, f"is a symbolic link to {target}, which does not exist")
        return MissingFileError(source, "no such file")
    if code == errno.ENOTDIR:
        return MissingFileError(source, "no such file: a part of the path is a file, not a folder")
    if code == errno.ELOOP:
        return UnreadableFileError(source, "a loop of symbolic links: no file at the end of it")
    if code in (errno.EACCES, errno.EPERM):
        return UnreadableFileError(source, "permission denied: this user may not read it (check its mode, "
                                           "owner and folders)")
    if code == errno.EISDIR:
        return NotAFileError(source, "is a folder, not a file")
    reason = exc.strerror or str(exc) or type(exc).__name__
    return UnreadableFileError(source, f"cannot be read: {reason}")


def _network_error(exc: BaseException, source: str) -> CTXError | None:
    """A CTX error when ``exc`` (or its cause) says a server failed, else ``None``.

    fsspec's HTTP file system reports every failure of its HEAD and GET as
    FileNotFoundError; the cause tells a refused connection from a 404.
    """
    import asyncio

    if not is_remote(source):
        return None
    seen = exc
    while seen is not None:
        status = getattr(seen, "status", None)
        if isinstance(status, int) and status >= 400:
            if status in (404, 410):
                return MissingFileError(source, f"no such file on the server (HTTP {status})")
            message = getattr(seen, "message", "") or ""
            return UnreachableURLError(source, f"the server refused the request: HTTP {status} {message}".rstrip())
        if isinstance(seen, (asyncio.TimeoutError, TimeoutError)):
            return UnreachableURLError(source, "the server did not answer in time; check the address and network")
        if isinstance(seen, ConnectionError) or type(seen).__name__.startswith(("ClientConnect", "ServerDisconnect")):
            refused = isinstance(seen, ConnectionRefusedError) or isinstance(
                getattr(seen, "os_error", None), ConnectionRefusedError)
            why = " (connection refused)" if refused else ""
            return UnreachableURLError(source, f"cannot reach the server{why}; check the address, "
                                               "the network and that the server is up")
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, FileNotFoundError):
        return MissingFileError(source, "no such file on the server")
    return None
