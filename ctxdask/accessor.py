"""``ds.ctx``: a stateless façade over ctxdask's module functions.

Registered when :mod:`ctxdask.backend` is imported (every Dataset from
:func:`ctxdask.open_edr` has it). Each method forwards to the function of the
same job and returns what it returns; the accessor keeps no state.

Examples
--------
>>> ds = ctxdask.open_edr("B10_013341_1010_XN_79S172W.IMG")  # doctest: +SKIP
>>> ds.ctx.calibrate(units="rate").ctx.to_isis("B10.lev1.cub")  # doctest: +SKIP
"""

from __future__ import annotations

import xarray as xr

__all__ = ["CTXAccessor"]


@xr.register_dataset_accessor("ctx")
class CTXAccessor:
    """CTX operations on a Dataset opened by :func:`ctxdask.open_edr`."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    @property
    def calibration(self) -> str:
        """The processing stage of ``image``: raw, counts, rate or iof."""
        return self._ds.image.attrs.get("calibration", "raw")

    def decompand(self) -> xr.Dataset:
        """See :func:`ctxdask.decompand`."""
        from ctxdask.radiometry.calibrate import decompand

        return decompand(self._ds)

    def calibrate(self, flat=None, units="iof", even_odd=False, **kwargs) -> xr.Dataset:
        """See :func:`ctxdask.calibrate`."""
        from ctxdask.radiometry.calibrate import calibrate

        return calibrate(self._ds, flat=flat, units=units, even_odd=even_odd, **kwargs)

    def even_odd(self) -> xr.Dataset:
        """See :func:`ctxdask.radiometry.calibrate.even_odd_correct`."""
        from ctxdask.radiometry.calibrate import even_odd_correct

        return even_odd_correct(self._ds)

    def to_isis(self, path, **kwargs):
        """See :func:`ctxdask.io.isis.write_isis`."""
        from ctxdask.io.isis_write import write_isis

        return write_isis(self._ds, path, **kwargs)

    def to_zarr(self, path, **kwargs):
        """See :func:`ctxdask.io.zarr.write_zarr`."""
        from ctxdask.io.zarr import write_zarr

        return write_zarr(self._ds, path, **kwargs)

    def to_geotiff(self, path, **kwargs):
        """See :func:`ctxdask.io.geotiff.write_geotiff`."""
        from ctxdask.io.geotiff import write_geotiff

        return write_geotiff(self._ds, path, **kwargs)

    def write(self, path, **kwargs):
        """See :func:`ctxdask.io.write` (format from the suffix)."""
        from ctxdask.io import write

        return write(self._ds, path, **kwargs)

    def validate(self, **kwargs):
        """Validate the file this Dataset was opened from (see :func:`ctxdask.validate`)."""
        from ctxdask.validation import validate

        return validate(self._ds.attrs["source"], **kwargs)
