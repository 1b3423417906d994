"""Checks that a program's declared outputs are complete files of their format.

A program can exit 0 and still leave a missing or half-written product (a full
disk, a killed helper); such a step must fail rather than feed the next one.
"""

from __future__ import annotations

import os
import warnings

__all__ = ["check_output"]

def _check_cube(path: str, size: int) -> None:
    from ctxdask.exceptions import CTXError, TruncatedFileError, UnsupportedModeError
    from ctxdask.io.isis_read import CubeLayout

    with open(path, "rb") as f:
        head = f.read(64)
    if not head.lstrip().startswith(b"Object = IsisCube"):
        raise ValueError("not an ISIS cube (the label does not start with 'Object = IsisCube')")
    try:
        # the reader's layout knows the data size the label promises, tile padding included
        CubeLayout.from_label(path)
    except UnsupportedModeError:
        return  # detached data (^Core) or a pixel type we do not read: no size to check here
    except TruncatedFileError as exc:
        raise ValueError(f"ISIS cube is truncated: {exc.reason}") from None
    except CTXError as exc:
        raise ValueError(f"ISIS cube label: {exc.reason}") from None


def _check_tiff(path: str) -> None:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.windows import Window

    with warnings.catch_warnings():
        # point clouds (-PC.tif) are not georeferenced, and need not be
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            # reading the last row touches the end of the file: a truncated file fails here
            src.read(1, window=Window(0, src.height - 1, src.width, 1))


def check_output(path: str | os.PathLike) -> None:
    """Raise ``ValueError`` (saying why) unless ``path`` is a complete output file.

    ``.cub``: an attached ISIS cube whose file holds all the pixels its label
    declares. ``.tif``: a raster GDAL reads to its last row. Anything else: a
    non-empty file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError("missing")
    size = os.path.getsize(path)
    if size == 0:
        raise ValueError("empty")
    lower = path.lower()
    try:
        if lower.endswith(".cub"):
            _check_cube(path, size)
        elif lower.endswith((".tif", ".tiff")):
            _check_tiff(path)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure means unusable
        raise ValueError(f"unreadable ({type(exc).__name__}: {exc})") from None
