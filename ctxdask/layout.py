"""Where the pixels of a raw CTX line sit: prefix, dark reference, active image, suffix.

Each raw line of a CTX EDR holds, in order, prefix pixels (some of them masked
dark-reference pixels), the active detector pixels, and suffix pixels. How
many of each depends on the summing mode and on whether the image starts at
the first CCD pixel; :data:`LAYOUTS` is the table ISIS ``mroctx2isis`` uses
(DESIGN.md section 4, EDR SIS section 4.3). Pure arithmetic: no I/O.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["CCD_PIXELS", "EDRLayout", "LAYOUTS"]

#: pixels of the CTX line array (SIS 2.1: Kodak KLI-5001G); ISIS ctxcal reads 5000 flat values
#: (isis/src/mro/apps/ctxcal/ctxcal.cpp: ``new Brick(5000, 1, 1, ...)``)
CCD_PIXELS = 5000

#: (SAMPLING_FACTOR, SAMPLE_FIRST_PIXEL > 0) -> (prefix bytes, dark start, dark stop, suffix bytes);
#: dark columns are 0-based raw columns, stop exclusive
LAYOUTS: dict[tuple[int, bool], tuple[int, int, int, int]] = {
    (1, False): (38, 14, 38, 18),
    (1, True): (16, 0, 16, 0),
    (2, False): (19, 7, 19, 9),
    (2, True): (8, 0, 8, 0),
}


@dataclasses.dataclass(frozen=True)
class EDRLayout:
    """Where the prefix, dark, active and suffix pixels sit in a raw line."""

    line_samples: int
    summing: int
    first_pixel: int
    prefix_bytes: int
    dark_start: int
    dark_stop: int
    suffix_bytes: int

    @classmethod
    def for_modes(cls, line_samples: int, summing: int, first_pixel: int) -> EDRLayout:
        """The layout of a line of ``line_samples`` bytes in the given modes."""
        prefix, dark_start, dark_stop, suffix = LAYOUTS[(summing, first_pixel > 0)]
        return cls(line_samples, summing, first_pixel, prefix, dark_start, dark_stop, suffix)

    @property
    def active_start(self) -> int:
        """First raw column of the active image."""
        return self.prefix_bytes

    @property
    def active_stop(self) -> int:
        """Raw column after the last active pixel."""
        return self.line_samples - self.suffix_bytes

    @property
    def samples(self) -> int:
        """Number of active samples per line."""
        return self.active_stop - self.active_start

    @property
    def flat_offset(self) -> int:
        """First CCD pixel of the image as ctxcal indexes the flat field."""
        return self.first_pixel - 38 if self.first_pixel > 0 else 0

    @property
    def ccd_span(self) -> tuple[int, int]:
        """CCD pixels ``(first, stop)`` the active samples cover (stop exclusive)."""
        return self.flat_offset, self.flat_offset + self.summing * self.samples

    def detector_pixels(self) -> np.ndarray:
        """CCD pixel under each active sample (the first of the pair when summing 2)."""
        return self.flat_offset + self.summing * np.arange(self.samples)

    @property
    def regions(self) -> dict[str, tuple[int, int]]:
        """Raw column range ``(start, stop)`` of each variable."""
        return {
            "image": (self.active_start, self.active_stop),
            "dark": (self.dark_start, self.dark_stop),
            "prefix": (0, self.prefix_bytes),
            "suffix": (self.active_stop, self.line_samples),
        }
