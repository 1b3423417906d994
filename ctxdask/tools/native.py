"""Native ctxdask calibration as a recipe step.

With ``tools.calibration: native`` the recipe replaces ISIS ``mroctx2isis``,
``ctxcal`` and ``ctxevenodd`` by one step that runs a Python callable
``function(source, destination, **options)`` named ``"module:function"``
(setting ``tools.native-calibrate``). The step runs the callable in a fresh
interpreter::

    python -m ctxdask.tools.native MODULE:FUNCTION SOURCE DESTINATION --options JSON

so it gets the same deadline, process-group kill and log file as an external
program: a Python function in a worker thread could not be stopped.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Callable

__all__ = ["calibrate_to_cube", "load_callable", "main"]


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
                      units: str = "iof", flat: str | None = None) -> None:
    """Calibrate a CTX EDR with ctxdask and write the ISIS level-1 cube.

    The chain is :func:`ctxdask.edr.open_edr` ->
    :func:`ctxdask.radiometry.calibrate.calibrate` ->
    :func:`ctxdask.io.isis.write_isis` (level 1), the native equivalent of
    ``mroctx2isis`` + ``ctxcal`` (+ ``ctxevenodd``).

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
        A flat-field file; ``None`` uses unity (with a warning).
    """
    from ctxdask.edr import open_edr
    from ctxdask.io.isis import write_isis
    from ctxdask.radiometry.calibrate import calibrate

    ds = open_edr(source)
    cal = calibrate(ds, flat=flat, units=units, even_odd=even_odd)
    write_isis(cal, destination, level=1)


def main(argv: list[str] | None = None) -> int:
    """Command line used by native recipe steps (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m ctxdask.tools.native",
                                     description="Run a native ctxdask recipe step.")
    parser.add_argument("function", help="module:function(source, destination, **options)")
    parser.add_argument("source")
    parser.add_argument("destination")
    parser.add_argument("--options", default="{}", help="keyword arguments as JSON")
    args = parser.parse_args(argv)
    options = json.loads(args.options)
    func = load_callable(args.function)
    print(f"ctxdask native step: {args.function}({args.source!r}, {args.destination!r}, "
          f"**{options!r})", flush=True)
    t0 = time.monotonic()
    func(os.fspath(args.source), os.fspath(args.destination), **options)
    print(f"ctxdask native step: done in {time.monotonic() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through subprocess in tests
    sys.exit(main())
