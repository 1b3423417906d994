"""Where the tracking database lives, and the two ways of opening it: as its writer or as a reader.

SQLite in WAL mode, one file (by default ``<out>/ctxdask-batch.sqlite``), so
``ctxdask status``, the report, the live pages and notebooks read while a batch
writes. Every connection, reading or writing, comes from here, and every one
meets a database at :data:`~ctxdask.tracking.schema.SCHEMA_VERSION`: an older
file is migrated when it is first opened (see :mod:`ctxdask.tracking.schema`).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import pathlib
import sqlite3
from collections.abc import Iterator

from ctxdask.exceptions import CTXError, MissingFileError
from ctxdask.tracking.schema import SCHEMA_VERSION, SchemaError, migrate, version

__all__ = ["DEFAULT_NAME", "connect_reader", "connect_writer", "database_path", "lock_database", "now",
           "open_existing"]

DEFAULT_NAME = "ctxdask-batch.sqlite"
#: how long a connection waits for another's write lock before "database is locked"
BUSY_SECONDS = 10.0


def now() -> str:
    """The current UTC time, ISO 8601 with microseconds (sortable as text)."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


def database_path(spec: str | os.PathLike | None, out: str | os.PathLike) -> pathlib.Path:
    """Resolve the ``--db`` option: ``None`` (the default file in ``out``), a path or a URL.

    URLs are SQLAlchemy-style ``sqlite:///relative.sqlite`` or
    ``sqlite:////absolute/path.sqlite``; other databases are not supported.
    """
    if spec is None:
        return pathlib.Path(out) / DEFAULT_NAME
    text = os.fspath(spec)
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme != "sqlite" or not rest.startswith("/") or rest == "/":
            raise ValueError(
                f"{text!r}: only SQLite databases are supported, as a path or a URL "
                "sqlite:///relative/file.sqlite or sqlite:////absolute/file.sqlite"
            )
        text = rest[1:]
    path = pathlib.Path(text)
    return path / DEFAULT_NAME if path.is_dir() else path


@contextlib.contextmanager
def lock_database(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` for one driver at a time.

    The lock is an ``flock``, released by the kernel when the holder dies, so a
    killed driver never leaves a stale lock behind.

    Raises
    ------
    RuntimeError
        Another process holds it.
    """
    lock = pathlib.Path(f"{os.fspath(path)}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise RuntimeError(
                f"{path}: another ctxdask batch (pid {holder}) is using this database; "
                "wait for it to finish or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def connect_writer(path: str | os.PathLike, *, timeout: float = BUSY_SECONDS) -> sqlite3.Connection:
    """A writable connection (autocommit; transactions are explicit), the file and folder made if missing.

    WAL with ``synchronous=NORMAL``: a killed process loses nothing committed;
    only a power cut could.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=timeout, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if version(conn) != SCHEMA_VERSION:
            migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    conn.row_factory = sqlite3.Row
    return conn


def open_existing(path: str | os.PathLike) -> pathlib.Path:
    """``path`` if it is a tracking database, else a one-line error naming it and what is wrong.

    Raises
    ------
    ctxdask.exceptions.MissingFileError
        No such file.
    ctxdask.exceptions.CTXError
        Not an SQLite database, or one without the batch tables.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise MissingFileError(path, "no tracking database here; give the output folder of a `ctxdask batch` run, "
                                     "or the database with --db")
    try:
        conn = connect_reader(path)
        try:
            conn.execute("SELECT count(*) FROM images").fetchone()
            conn.execute("SELECT count(*) FROM pairs").fetchone()
        finally:
            conn.close()
    except SchemaError:
        raise
    except sqlite3.DatabaseError as exc:
        raise CTXError(path, f"not a ctxdask tracking database ({exc})") from None
    return path


def connect_reader(path: str | os.PathLike) -> sqlite3.Connection:
    """A read-only connection that never takes the write lock (rows as :class:`sqlite3.Row`).

    A database of an older schema is migrated first (through a short-lived
    writer), so readers only ever meet the current layout.

    Raises
    ------
    ctxdask.exceptions.MissingFileError
        No such file.
    SchemaError
        The database is older and this process may not write it, or it is newer.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise MissingFileError(path, "no tracking database here")
    conn = _read_only(path)
    try:
        found = version(conn)
    except BaseException:
        conn.close()
        raise
    if found != SCHEMA_VERSION:
        conn.close()
        if found > SCHEMA_VERSION or not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
            raise SchemaError(path, f"schema version {found}, this ctxdask reads version {SCHEMA_VERSION}; "
                                    + ("upgrade ctxdask" if found > SCHEMA_VERSION else
                                       "open it once as a user who may write it (e.g. `ctxdask status`) "
                                       "to migrate it"))
        connect_writer(path).close()
        conn = _read_only(path)
    return conn


def snapshot(path: str | os.PathLike, dest: str | os.PathLike) -> pathlib.Path:
    """A consistent copy of the database at ``path`` in ``dest`` (SQLite's online backup; a writer may be busy).

    What plans without writing (``ctxdask batch --dry-run``) works on a copy,
    so that the same planning code runs and the batch's own file is only read.
    """
    source = _read_only(pathlib.Path(path))
    try:
        target = sqlite3.connect(os.fspath(dest))
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
    return pathlib.Path(dest)


def _read_only(path: pathlib.Path) -> sqlite3.Connection:
    # check_same_thread=False: the web server hands a connection to its thread pool
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
    conn.row_factory = sqlite3.Row
    return conn
