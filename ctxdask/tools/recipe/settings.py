"""The ``tools`` settings a recipe is built from, and the per-step deadline and resources they give."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from ctxdask.settings import current as current_settings

__all__ = ["RecipeSettings", "step_resources", "step_timeout"]


@dataclasses.dataclass(frozen=True)
class RecipeSettings:
    """The ``tools`` settings a recipe is built from (read once, on the client).

    Build it with :meth:`from_config`; the fields mirror ``ctxdask.yaml``.
    """

    calibration: Literal["isis", "native"] = "native"
    native_calibrate: str = "ctxdask.tools.native:calibrate_to_cube"
    even_odd: bool = True
    timeouts: Mapping[str, float] = dataclasses.field(default_factory=dict)
    resources: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)
    env: Mapping[str, str | None] = dataclasses.field(default_factory=dict)
    spiceinit_web: bool = False
    stereo_algorithm: str = "asp_mgm"
    subpixel_mode: int = 9
    stereo_default: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    processes: int | None = None
    threads: int | None = None
    datum: str = "mars"
    dem_spacing: float | None = None
    orthoimage: bool = True
    errorimage: bool = True
    pc_align: bool = False
    max_displacement: float | None = None
    alignment_factor: float = 3.0
    alignment_floor: float = 10.0
    alignment_reruns: int = 2
    mola_csv_format: str = "1:lon 2:lat 3:radius_km"
    dem_geoid: bool = False
    geoid: str | None = "MOLA"
    stereo_mode: Literal["monolithic", "tiled", "auto"] = "monolithic"
    tile_size: int = 2048
    tile_padding: int = 256
    lowres_dem: str | None = None
    mapproject_tr: float | None = None
    t_srs: str | None = None
    corr_memory_mb: int | None = None
    #: folder of monthly flats for the native calibration (setting ``flat.dir``)
    flat_dir: str | None = None

    @classmethod
    def from_config(cls, **overrides: Any) -> RecipeSettings:
        """Read ``ctxdask.tools.*`` now and apply ``overrides`` (field names).

        ``timeouts`` and ``resources`` overrides are merged into the configured
        mappings (so ``timeouts={"parallel_stereo": 600}`` changes one step).
        """
        settings = current_settings()
        tools, asp, align = settings.tools, settings.tools.asp, settings.quality.dem_alignment
        values: dict[str, Any] = dict(
            calibration=tools.calibration, native_calibrate=tools.native_calibrate, even_odd=tools.even_odd,
            timeouts=dict(tools.timeouts), resources={k: dict(v) for k, v in tools.resources.items()},
            env=dict(tools.env), spiceinit_web=tools.isis.spiceinit_web,
            stereo_algorithm=asp.stereo_algorithm, subpixel_mode=asp.subpixel_mode,
            stereo_default=dict(asp.stereo_default), processes=asp.processes, threads=asp.threads, datum=asp.datum,
            dem_spacing=asp.dem_spacing, orthoimage=asp.orthoimage, errorimage=asp.errorimage, pc_align=asp.pc_align,
            max_displacement=None if asp.max_displacement in (None, "auto") else asp.max_displacement,
            alignment_factor=align.factor, alignment_floor=align.floor, alignment_reruns=align.reruns,
            mola_csv_format=asp.mola_csv_format, dem_geoid=asp.dem_geoid, geoid=asp.geoid,
            stereo_mode=asp.stereo_mode, tile_size=asp.tiles.size, tile_padding=asp.tiles.padding,
            lowres_dem=asp.lowres_dem, mapproject_tr=asp.mapproject_tr, t_srs=asp.t_srs,
            corr_memory_mb=asp.corr_memory_limit_mb, flat_dir=settings.flat.dir,
        )
        for name in ("timeouts", "resources"):
            if name in overrides:
                values[name] = {**values[name], **dict(overrides.pop(name))}
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown recipe settings: {sorted(unknown)}")
        values.update(overrides)
        if values["calibration"] not in ("isis", "native"):
            raise ValueError(
                f"tools.calibration must be 'isis' or 'native', not {values['calibration']!r}"
            )
        if values["stereo_mode"] not in ("monolithic", "tiled", "auto"):
            raise ValueError("tools.asp.stereo-mode must be 'monolithic', 'tiled' or 'auto', "
                             f"not {values['stereo_mode']!r}")
        return cls(**values)

    def resolved(self) -> RecipeSettings:
        """These settings with ``stereo_mode`` ``auto`` decided by what is installed here.

        ASP 3.7 (2026) brought ``stereo_tile``; older ASP has only
        ``parallel_stereo``. Tiles need images mapprojected onto a
        low-resolution DEM: without one configured, monolithic.
        """
        if self.stereo_mode != "auto":
            return self
        import shutil

        tiled = shutil.which("stereo_tile", path=(self.env or {}).get("PATH")) and self.lowres_dem
        return dataclasses.replace(self, stereo_mode="tiled" if tiled else "monolithic")


def step_timeout(settings: RecipeSettings, name: str, default: float) -> float:
    """The deadline of step ``name``: setting ``tools.timeouts.<name>``, else ``default``."""
    return settings.timeouts.get(name, default)


def step_resources(settings: RecipeSettings, name: str) -> dict[str, float]:
    """The dask worker resources of step ``name`` (setting ``tools.resources.<name>``; empty if unset)."""
    return dict(settings.resources.get(name, {}))
