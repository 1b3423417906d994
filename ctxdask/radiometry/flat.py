"""Detector flat fields for :func:`ctxdask.calibrate`.

ISIS keeps the CTX flats (``ctxFlat_000N.cub``, one line of 5000 Real values)
in ISISDATA, which is not distributed with ctxdask; users pass their own flat as
an ISIS cube, a GeoTIFF, a ``.npy`` file, or an array. Without one, a unity
flat is used and the caller warns and records it.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import warnings

import numpy as np

from ctxdask.exceptions import CTXError

__all__ = ["Flat", "FlatError", "load_flat", "flat_for_samples"]


class FlatError(CTXError, ValueError):
    """A flat field that cannot be read or does not fit the image."""


@dataclasses.dataclass(frozen=True)
class Flat:
    """A 1-D detector flat and where it came from.

    Attributes
    ----------
    values : numpy.ndarray
        float64, indexed by CCD pixel; ``None`` for the unity flat.
    source : str
        ``"unity"``, ``"array"``, or the file path.
    """

    values: np.ndarray | None
    source: str

    @property
    def is_unity(self) -> bool:
        """True when no flat was given."""
        return self.values is None


def load_flat(flat: str | os.PathLike | np.ndarray | Flat | None) -> Flat:
    """Read a flat field from a path (``.cub``, ``.tif``/``.tiff``, ``.npy``) or an array.

    Cubes and GeoTIFFs give band 1 of line 1, as ``ctxcal`` reads them (so the
    3-band flats of :func:`ctxdask.radiometry.flatio.write_flat` work); a 2-D
    ``.npy`` or array must have exactly one line: CTX flats are indexed by
    detector pixel only.
    """
    if flat is None:
        return Flat(None, "unity")
    if isinstance(flat, Flat):
        return flat
    if isinstance(flat, (str, os.PathLike)):
        path = pathlib.Path(flat)
        if not path.is_file():
            raise FlatError(path, "flat-field file not found")
        suffix = path.suffix.lower()
        try:
            if suffix == ".npy":
                values = np.load(path, allow_pickle=False)
            elif suffix == ".cub":
                from ctxdask.io.isis_read import read_cube

                # ctxcal reads a Brick(5000, 1, 1) at sample 1, line 1, band 1 (ctxcal.cpp); further
                # bands (ctxdask flats add uncertainty and image count) are not part of the flat
                values = read_cube(path, dtype=np.float64)[0, 0].compute()
            elif suffix in (".tif", ".tiff"):
                import rioxarray
                from rasterio.errors import NotGeoreferencedWarning

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a detector flat has no map
                    with rioxarray.open_rasterio(path, masked=True) as raster:
                        values = raster.values[0, 0].astype(np.float64)  # band 1, line 1, as for cubes
            else:
                raise FlatError(path, f"unknown flat-field format {suffix!r}; use .cub, .tif or .npy")
        except CTXError:
            raise
        except Exception as exc:  # the readers' own errors, reported with the file
            raise FlatError(path, f"cannot read the flat field: {exc}") from exc
        return Flat(_one_line(values, str(path)), str(path))
    return Flat(_one_line(np.asarray(flat, dtype=np.float64), "array"), "array")


def flat_for_samples(flat: Flat, detector_pixel: np.ndarray, summing: int, *, source: str | None = None) -> np.ndarray:
    """The flat value of each image sample, as ctxcal indexes it.

    Summing 1 uses ``F[detector_pixel]``; summing 2 averages the CCD pair
    ``(F[p] + F[p + 1]) / 2`` where ``p = 2 i + first`` is ``detector_pixel``.
    """
    detector_pixel = np.asarray(detector_pixel)
    if flat.is_unity:
        return np.ones(detector_pixel.shape, dtype=np.float64)
    values = flat.values
    need = int(detector_pixel.max()) + summing if detector_pixel.size else 0
    if detector_pixel.size and (detector_pixel.min() < 0 or need > values.size):
        raise FlatError(
            source,
            f"the flat ({flat.source}) has {values.size} values but this image needs detector pixels "
            f"{int(detector_pixel.min())}..{need - 1}",
        )
    if summing == 1:
        return values[detector_pixel]
    return (values[detector_pixel] + values[detector_pixel + 1]) / 2


def _one_line(values: np.ndarray, source: str) -> np.ndarray:
    squeezed = np.squeeze(values)
    if squeezed.ndim != 1:
        raise FlatError(source, f"a CTX flat is one line of detector pixels; this one has shape {values.shape}")
    if squeezed.size < 5000:
        raise FlatError(source, f"a CTX flat covers the 5000-pixel CCD; this one has {squeezed.size} values")
    return squeezed.astype(np.float64)
