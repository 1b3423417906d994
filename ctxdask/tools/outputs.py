"""Checks that a program's declared outputs are complete files of their format.

A program can exit 0 and still leave a missing or half-written product (a full
disk, a killed helper); such a step must fail rather than feed the next one.
"""

from __future__ import annotations

import math
import os
import re
import warnings

__all__ = ["check_output"]

_PIXEL_BYTES = {"UnsignedByte": 1, "SignedWord": 2, "UnsignedWord": 2, "SignedInteger": 4,
                "UnsignedInteger": 4, "Real": 4, "Double": 8}
_END = re.compile(rb"^End\s*$", re.MULTILINE)


def _check_cube(path: str, size: int) -> None:
    import pvl

    with open(path, "rb") as f:
        head = f.read(4 * 1024 * 1024)
    if not head.lstrip().startswith(b"Object = IsisCube"):
        raise ValueError("not an ISIS cube (the label does not start with 'Object = IsisCube')")
    match = _END.search(head)
    if match is None:
        raise ValueError("ISIS cube label has no End statement")
    label = pvl.loads(head[: match.end()].decode("ascii", errors="replace"))
    core = label["IsisCube"]["Core"]
    if "^Core" in label["IsisCube"]:  # detached data: nothing to size-check here
        return
    dims, pixels = core["Dimensions"], core["Pixels"]
    samples, lines, bands = int(dims["Samples"]), int(dims["Lines"]), int(dims["Bands"])
    nbytes = _PIXEL_BYTES[str(pixels["Type"])]
    if str(core.get("Format", "Tile")) == "Tile":
        ts, tl = int(core["TileSamples"]), int(core["TileLines"])
        data = math.ceil(samples / ts) * ts * math.ceil(lines / tl) * tl * bands * nbytes
    else:
        data = samples * lines * bands * nbytes
    need = int(core["StartByte"]) - 1 + data
    if size < need:
        raise ValueError(f"ISIS cube is truncated: {size} bytes, its label needs {need}")


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
