"""The stereo options a tile's fallback parameter set may change, and the check of ``tools.asp.tile-fallbacks``.

A tile that fails with an error ASP explains is tried again with the next set
of ``tools.asp.tile-fallbacks`` (:mod:`ctxdask.batch.tiles`). Each set is a
mapping of stereo options laid over the configured ones on ``stereo_tile``'s
command line; ``stereo_tile`` keeps what its own parser does not know and
passes it to every stereo program (``parse_known_args``, src/asp/Tools/stereo_tile:166,
then :205-267 in NeoGeographyToolkit/StereoPipeline at 55bf46022), and a
command-line option wins over ``stereo.default`` (src/asp/Tools/stereo.cc:800-807).

Only correlation, subpixel and filtering options are allowed here, each with
the number of values its boost option takes (src/asp/Core/StereoSettings.cc,
line given below): the rest (files, alignment, crop windows, collar) is what
makes the tile the pair's tile and is ctxdask's or ``stereo_tile``'s to set.
The checks repeat ASP's own refusals for map-projected stereo, so a ladder ASP
would refuse fails when the settings are read, not on the first bad tile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctxdask.settings.checks import SettingsError

__all__ = ["ALGORITHMS", "FALLBACK_OPTIONS", "check_fallbacks", "fallback_label"]

#: option -> how many values it takes (StereoSettings.cc line of its definition)
FALLBACK_OPTIONS: dict[str, int] = {
    "stereo-algorithm": 1,  # :381
    "corr-kernel": 2,  # :330
    "cost-mode": 1,  # :319
    "xcorr-threshold": 1,  # :321
    "min-xcorr-level": 1,  # :324
    "corr-max-levels": 1,  # :347
    "corr-timeout": 1,  # :378
    "corr-blob-filter": 1,  # :384
    "corr-seed-mode": 1,  # :303 (stereo_tile's own option, passed on: stereo_tile:142, :209)
    "sgm-search-buffer": 2,  # :390
    "prefilter-mode": 1,  # :298
    "prefilter-kernel-width": 1,  # :301
    "subpixel-mode": 1,  # :420
    "subpixel-kernel": 2,  # :426
    "filter-mode": 1,  # :448
    "rm-half-kernel": 2,  # :450
    "rm-cleanup-passes": 1,  # :462
    "erode-max-size": 1,  # :474
    "median-filter-size": 1,  # :476
    "texture-smooth-size": 1,  # :478
    "texture-smooth-scale": 1,  # :480
}
#: ASP's own correlators (StereoSettings.cc:381-383); the external ones need --alignment-method
#: local_epipolar (stereo.cc:1163-1167), which map-projected images do not use
ALGORITHMS = ("asp_bm", "asp_sgm", "asp_mgm", "asp_final_mgm")


def _values(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def check_fallbacks(sets: Sequence[Mapping[str, Any]], *, algorithm: str, subpixel_mode: int,
                    key: str = "tools.asp.tile-fallbacks") -> None:
    """Refuse a fallback set ``stereo_tile`` or the stereo programs would refuse.

    Parameters
    ----------
    sets : sequence of mapping
        The fallback sets (option name -> value, a list for two values).
    algorithm, subpixel_mode
        The configured ``--stereo-algorithm`` and ``--subpixel-mode``, which a
        set keeps unless it sets them.

    Raises
    ------
    SettingsError
        Naming the set (``tools.asp.tile-fallbacks[1]``) or its option.
    """
    for i, options in enumerate(sets):
        where = f"{key}[{i}]"
        if not options:
            raise SettingsError(where, "an empty set changes nothing: give at least one stereo option")
        for name, value in options.items():
            count = FALLBACK_OPTIONS.get(str(name))
            if count is None:
                raise SettingsError(f"{where}.{name}", "not a stereo option a tile may change; allowed: "
                                                       + ", ".join(FALLBACK_OPTIONS))
            values = _values(value)
            if len(values) != count or any(isinstance(v, (bool, list, tuple, Mapping)) or v is None
                                           for v in values):
                raise SettingsError(f"{where}.{name}", f"{value!r} is not {count} value{'s' * (count > 1)}")
            if name != "stereo-algorithm" and not all(isinstance(v, (int, float)) for v in values):
                raise SettingsError(f"{where}.{name}", f"{value!r} is not a number" + "s" * (count > 1))
        algo = str(options.get("stereo-algorithm", algorithm))
        if algo not in ALGORITHMS:
            raise SettingsError(f"{where}.stereo-algorithm",
                                f"{algo!r} is not one of {', '.join(ALGORITHMS)} (the others need "
                                "local_epipolar alignment, which map-projected stereo does not use)")
        kernel = _values(options.get("corr-kernel", [0, 0]))
        if algo != "asp_bm" and "corr-kernel" in options and not all(3 <= k <= 9 and k % 2 for k in kernel):
            # stereo.cc:1143-1147 (between 3 and 9); docs/stereo_algorithms.rst:115-120 (odd)
            raise SettingsError(f"{where}.corr-kernel", f"{algo} needs an odd kernel between 3 and 9, not {kernel}")
        subpixel = options.get("subpixel-mode", subpixel_mode)
        if algo == "asp_bm" and subpixel > 6:  # stereo.cc:1158-1160
            raise SettingsError(f"{where}.subpixel-mode", f"asp_bm takes a subpixel mode up to 6, not {subpixel} "
                                                          "(the configured one, unless the set gives its own)")


def fallback_label(options: Mapping[str, Any], algorithm: str) -> str:
    """A short name of a parameter set: ``asp_sgm corr-kernel 7 7`` (the configured set: its algorithm)."""
    parts = [str(options.get("stereo-algorithm", algorithm))]
    parts += [f"{name} {' '.join(str(v) for v in _values(value))}" for name, value in options.items()
              if name != "stereo-algorithm"]
    return ", ".join(parts)
