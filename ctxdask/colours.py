"""Colour ramps shared by the products that use them and the pages that draw their colour bars.

Kept apart from :mod:`ctxdask.quality` (which brings dask and xarray) so a page
that only draws a colour bar imports nothing heavy.
"""

from __future__ import annotations

__all__ = ["DEFAULT_RAMP"]

#: colour ramp of the colour relief: (position 0..1 between the stretch percentiles, RGB)
DEFAULT_RAMP: tuple[tuple[float, tuple[int, int, int]], ...] = (
    (0.00, (43, 31, 120)),
    (0.20, (33, 118, 182)),
    (0.40, (62, 178, 122)),
    (0.60, (222, 213, 92)),
    (0.80, (190, 110, 50)),
    (1.00, (250, 245, 240)),
)
