"""What a file is, the same on every host: its size and the sha256 of its bytes.

A step's fingerprint names its inputs by what they are, not where they lie: a
low-resolution DEM copied to every machine, or an EDR downloaded again by
another worker, has another path or modification time on each host but the
same bytes. Fingerprints built on content let a worker reuse (or pull) a result
another host made from the same inputs (:func:`ctxdask.tools.tasks.cached_result`).

Hashing reads the whole file once per process and file version: the digest is
remembered against the file's path, size, modification time and inode, so a
worker asked again about an unchanged file answers from memory.
"""

from __future__ import annotations

import hashlib
import os
import threading

__all__ = ["content_identity", "file_sha256"]

_BLOCK = 4 * 1024 * 1024
#: (path, size, mtime_ns, inode) -> sha256; bounded: one entry per input file a worker has met
_digests: dict[tuple[str, int, int, int], str] = {}
_lock = threading.Lock()
_LIMIT = 4096


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 (hex) of the file's bytes, remembered while the file is unchanged.

    Parameters
    ----------
    path : str or os.PathLike

    Raises
    ------
    OSError
        The file cannot be read.
    """
    path = os.path.abspath(os.fspath(path))
    st = os.stat(path)
    version = (path, st.st_size, st.st_mtime_ns, st.st_ino)
    with _lock:
        known = _digests.get(version)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    value = digest.hexdigest()
    with _lock:
        if len(_digests) >= _LIMIT:
            _digests.clear()
        _digests[version] = value
    return value


def content_identity(path: str | os.PathLike) -> dict:
    """``{"size": bytes, "sha256": hex}`` of a file: equal on two hosts exactly when the bytes are."""
    return {"size": os.stat(path).st_size, "sha256": file_sha256(path)}
