"""Native ctxdask calibration as a recipe step.

With ``tools.calibration: native`` the recipe replaces ISIS ``mroctx2isis``,
``ctxcal`` and ``ctxevenodd`` by one step that runs a Python callable
``function(source, destination, **options)`` named ``"module:function"``
(setting ``tools.native-calibrate``). The step runs the callable in a fresh
interpreter::

    python -m ctxdask.tools.native MODULE:FUNCTION SOURCE DESTINATION --options JSON

so it gets the same deadline, process-group kill and log file as an external
program: a Python function in a worker thread could not be stopped. Extra
outputs of the step reach the callable as keyword arguments
(``--output quality=P.quality.json`` -> ``quality="P.quality.json"``).

The default callable, :func:`calibrate_to_cube`, also measures the image's
quality (:func:`ctxdask.quality.measure`) in the same pass over the EDR and
writes the metrics and grade (:func:`write_quality`) and a thumbnail PNG.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

__all__ = ["calibrate_to_cube", "load_callable", "main", "quality_record", "write_quality"]


def load_callable(path: str) -> Callable:
    """Import ``"package.module:function"`` and return the function."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{path!r} is not of the form 'package.module:function'")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{path} is not callable")
    return obj


def calibrate_to_cube(source: str, destination: str, *, even_odd: bool = True,
                      units: str = "iof", flat: str | None = None, quality: str | None = None,
                      thumbnail: str | None = None) -> None:
    """Calibrate a CTX EDR with ctxdask and write the ISIS level-1 cube (and its quality).

    The chain is :func:`ctxdask.open_edr` ->
    :func:`ctxdask.radiometry.calibrate.calibrate` ->
    :func:`ctxdask.io.isis.write_isis` (level 1), the native equivalent of
    ``mroctx2isis`` + ``ctxcal`` (+ ``ctxevenodd``).

    With ``quality`` (or ``thumbnail``) the quality metrics and the thumbnail
    of the calibrated image are computed in the same ``dask.compute`` as the
    calibration: the calibrated pixels go to a scratch file beside
    ``destination`` (the cube writer streams its own blocks, so it cannot
    share a graph), and the cube is then written from that file, so the EDR is
    read once.

    Parameters
    ----------
    source : str
        The EDR.
    destination : str
        The ``.cub`` to write.
    even_odd : bool
        Apply the even/odd correction (summing-1 images).
    units : {"iof", "rate"}
    flat : str, optional
        A flat-field file, or a folder of monthly flats (the batch passes setting
        ``flat.dir``; the image's month is picked from it); ``None`` uses unity
        (with a warning).
    quality : str, optional
        Where to write the metrics and grade as JSON (:func:`write_quality`).
    thumbnail : str, optional
        Where to write the thumbnail PNG.
    """
    from ctxdask.backend import open_edr
    from ctxdask.io.isis import write_isis
    from ctxdask.radiometry.calibrate import calibrate

    ds = open_edr(source)
    cal = calibrate(ds, flat=flat, units=units, even_odd=even_odd)
    if quality is None and thumbnail is None:
        write_isis(cal, destination, level=1)
        return
    import dask
    import dask.array as da
    import numpy as np

    from ctxdask.quality import measure

    qa = measure(ds, image=cal.image)
    image = cal.image.data
    fd, spill = tempfile.mkstemp(prefix=f".{os.path.basename(destination)}.", suffix=".f32",
                                 dir=os.path.dirname(os.path.abspath(destination)))
    os.close(fd)
    try:
        pixels = np.lib.format.open_memmap(spill, mode="w+", dtype=image.dtype, shape=image.shape)
        store = da.store(image, pixels, lock=False, compute=False)
        _, dark, qa = dask.compute(store, cal.dark.data, qa)
        pixels.flush()
        ready = cal[["image", "dark"]].copy()
        ready["image"] = cal.image.copy(data=da.from_array(pixels, chunks=image.chunks))
        ready["dark"] = cal.dark.copy(data=dark)
        write_isis(ready, destination, level=1)
        del pixels, ready
    finally:
        os.unlink(spill)
    write_quality(qa, quality, thumbnail)


def quality_record(qa: Any) -> dict[str, Any]:
    """``{"product_id", "metrics", "grade", "grade_reasons"}`` of a computed :func:`ctxdask.quality.measure`."""
    from ctxdask.quality import QualityMetrics

    metrics = QualityMetrics.from_dataset(qa)
    return {"product_id": metrics.product_id, "metrics": metrics.to_dict(), **metrics.grade().to_dict()}


def write_quality(qa: Any, quality: str | None, thumbnail: str | None) -> dict[str, Any]:
    """Write the record of :func:`quality_record` as JSON (atomically) and the thumbnail PNG."""
    from ctxdask.io.atomic import atomic_path
    from ctxdask.quality import write_png

    record = quality_record(qa)
    if thumbnail:
        write_png(qa.thumbnail, thumbnail)
    if quality:
        with atomic_path(quality) as tmp, open(tmp, "w") as f:
            json.dump(record, f, indent=1, allow_nan=False)
    return record


def main(argv: list[str] | None = None) -> int:
    """Command line used by native recipe steps (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m ctxdask.tools.native",
                                     description="Run a native ctxdask recipe step.")
    parser.add_argument("function", help="module:function(source, destination, **options)")
    parser.add_argument("source")
    parser.add_argument("destination")
    parser.add_argument("--options", default="{}", help="keyword arguments as JSON")
    parser.add_argument("--output", action="append", default=[], metavar="ROLE=PATH",
                        help="an extra output, passed as the keyword argument ROLE=PATH")
    args = parser.parse_args(argv)
    options = json.loads(args.options)
    for item in args.output:
        role, sep, path = item.partition("=")
        if not sep or not role.isidentifier():
            parser.error(f"--output {item!r}: expected ROLE=PATH")
        options[role] = path
    func = load_callable(args.function)
    print(f"ctxdask native step: {args.function}({args.source!r}, {args.destination!r}, "
          f"**{options!r})", flush=True)
    t0 = time.monotonic()
    func(os.fspath(args.source), os.fspath(args.destination), **options)
    print(f"ctxdask native step: done in {time.monotonic() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through subprocess in tests
    sys.exit(main())
