"""Byte-range reads of fixed-length line records, from local files or fsspec URLs.

Nothing here holds an open file between calls: every read opens, reads and
closes, so objects that carry a source string pickle to worker processes and
never leak handles. Local files use plain unbuffered reads (fast, no memory
map that dask would copy whole); remote sources use fsspec's ``cat_file`` with
a start/end range, which becomes an HTTP Range request for ``https://`` URLs.
"""

from __future__ import annotations

import fsspec
import numpy as np

from ctxdask.exceptions import TruncatedFileError
from ctxdask.filecheck import checked_size, is_remote, local_path, source_errors

__all__ = ["is_remote", "read_range", "read_records", "source_size"]


def source_size(source: str, storage_options: dict | None = None) -> int | None:
    """Size of a file or URL in bytes, ``None`` when the server does not say.

    Raises the same errors as :func:`checked_size`.
    """
    fs, path = fsspec.core.url_to_fs(source, **(storage_options or {}))
    return checked_size(fs, path, source)


def read_range(source: str, start: int, length: int, storage_options: dict | None = None) -> np.ndarray:
    """Read exactly ``length`` bytes at ``start`` into a new writable uint8 array.

    Raises
    ------
    TruncatedFileError
        The file ends before ``start + length`` (it shrank, or the label lied).
    """
    out = np.empty(length, dtype=np.uint8)
    if length == 0:
        return out
    if is_remote(source):
        fs, path = fsspec.core.url_to_fs(source, **(storage_options or {}))
        with source_errors(source):
            data = fs.cat_file(path, start=start, end=start + length)
        got = len(data)
        out[:got] = np.frombuffer(data, dtype=np.uint8)
    else:
        view = memoryview(out)
        got = 0
        with source_errors(source), open(local_path(source), "rb", buffering=0) as f:
            f.seek(start)
            while got < length:
                n = f.readinto(view[got:])
                if not n:
                    break
                got += n
    if got < length:
        raise TruncatedFileError(
            source,
            f"the file ends at byte {start + got:,} but the image continues to byte {start + length:,}; "
            "it was truncated (or changed) after it was opened",
        )
    return out


def read_records(
    source: str,
    offset: int,
    record_bytes: int,
    first: int,
    stop: int,
    storage_options: dict | None = None,
) -> np.ndarray:
    """Read records ``first:stop`` of ``record_bytes`` each, starting at byte ``offset``.

    Returns a ``(stop - first, record_bytes)`` uint8 array.
    """
    count = max(stop - first, 0)
    data = read_range(source, offset + first * record_bytes, count * record_bytes, storage_options)
    return data.reshape(count, record_bytes)
