"""The xarray backend: ``xr.open_dataset(path, engine="ctx")``.

Registered under the ``xarray.backends`` entry point ``ctx`` (pyproject.toml).
All the work happens in :mod:`ctxdask.edr`; this class only adapts it to
xarray's :class:`~xarray.backends.BackendEntrypoint` protocol.
"""

from __future__ import annotations

import os
from typing import Any

import xarray as xr
from xarray.backends import BackendEntrypoint

from ctxdask.edr import describe_edr, edr_dataset

_SUFFIXES = (".img", ".lbl")


class CTXBackendEntrypoint(BackendEntrypoint):
    """Open MRO CTX EDRs (raw PDS3 products) as lazily indexed Datasets."""

    description = "Open MRO Context Camera (CTX) EDRs (PDS3 .IMG/.LBL) in xarray"
    url = "https://github.com/ctxdask/ctxdask"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "storage_options", "allow_unsupported_mode")

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | list[str] | None = None,
        storage_options: dict | None = None,
        allow_unsupported_mode: bool = False,
    ) -> xr.Dataset:
        """Describe the EDR from its label and return its lazy Dataset."""
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            raise TypeError(f"the ctx engine opens paths and URLs, not {type(filename_or_obj).__name__} objects")
        product = describe_edr(
            filename_or_obj, storage_options=storage_options, allow_unsupported_mode=allow_unsupported_mode
        )
        ds = edr_dataset(product)
        if drop_variables is not None:
            ds = ds.drop_vars(drop_variables, errors="ignore")
        return ds

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """Claim local ``.IMG``/``.LBL`` files whose label names CTX."""
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            return False
        path = os.fspath(filename_or_obj)
        if not path.lower().endswith(_SUFFIXES) or not os.path.isfile(path):
            return False
        try:
            with open(path, "rb") as f:
                head = f.read(8192)
        except OSError:
            return False
        return b"INSTRUMENT_ID" in head and b"CTX" in head
