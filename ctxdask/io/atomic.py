"""Atomic replacement of output files and folders.

A product is written under a temporary name beside its destination and
renamed into place only when complete, so a crash or a kill never leaves a
half-written product under the real name.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import stat
import uuid
from collections.abc import Iterator

from ctxdask.exceptions import OutputPathError

__all__ = ["atomic_path", "check_destination"]

#: files whose presence marks a folder as a zarr store (format 3, format 2)
_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray", ".zmetadata")


def check_destination(path: str | os.PathLike, *, folder: bool = False) -> pathlib.Path:
    """Check that a product can be written at ``path``, before any work is done.

    Every writer follows the same rule, the one ``cp``, GDAL and ISIS follow:
    the folder an output goes into must already exist (a typo in it then
    fails at once instead of scattering new folders), and an existing
    destination is replaced only by a product of its own kind.

    Parameters
    ----------
    path : str or os.PathLike
        The destination.
    folder : bool
        The product is a folder (a zarr store): an existing empty folder or
        zarr store is replaced, any other folder is refused.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    OutputPathError
        The parent folder is missing or is not a folder, the destination is a
        folder (a file for ``folder=True``) or a pipe/device, or the folder is
        not writable.
    """
    path = pathlib.Path(path)
    parent = path.parent
    if not parent.exists():
        raise OutputPathError(path, f"the folder {parent} does not exist; create it first (mkdir -p {parent})")
    if not parent.is_dir():
        raise OutputPathError(path, f"{parent} is a file, not a folder")
    if path.exists() or path.is_symlink():
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise OutputPathError(path, f"cannot be replaced: {exc.strerror}") from None
        if folder:
            if stat.S_ISDIR(mode):
                if any(path.iterdir()) and not any((path / m).exists() for m in _ZARR_MARKERS):
                    raise OutputPathError(path, "is a folder that is not a zarr store; "
                                                "ctxdask will not replace it: give a new name")
            elif stat.S_ISREG(mode):
                raise OutputPathError(path, "is an existing file, not a zarr store; give a new name")
            else:
                raise OutputPathError(path, "exists and is not a zarr store; give a new name")
        elif stat.S_ISDIR(mode):
            raise OutputPathError(path, f"is an existing folder; give a file name in it, "
                                        f"e.g. {path / 'NAME'}{path.suffix or '.cub'}")
        elif not stat.S_ISREG(mode):
            raise OutputPathError(path, "exists and is not a regular file (a pipe or a device?); give a new name")
    if not os.access(parent, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        raise OutputPathError(path, f"permission denied: this user may not write in {parent}")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    Works for files and folders (zarr stores). An existing destination is
    replaced; on any exception the temporary is removed and the destination
    is left untouched.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            # os.replace cannot replace a non-empty folder: move the old one aside first
            old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
