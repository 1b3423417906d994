"""The ``tools`` settings a recipe is built from, and the per-step deadline and resources they give."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from ctxdask import config
from ctxdask.exceptions import RecipeError
from ctxdask.settings import current as current_settings

__all__ = ["RecipeSettings", "step_resources", "step_timeout"]


def _yaml(key: str) -> Any:
    """A field whose default is the yaml's (``ctxdask.yaml``: every default is written there once)."""
    value = config.default(key)
    if isinstance(value, dict):
        return dataclasses.field(default_factory=lambda: config.default(key))
    return value


@dataclasses.dataclass(frozen=True)
class RecipeSettings:
    """The ``tools`` settings a recipe is built from (read once, on the client).

    Build it with :meth:`from_config`; the fields mirror ``ctxdask.yaml``, and
    their defaults are the yaml's.
    """

    calibration: Literal["isis", "native"] = _yaml("tools.calibration")
    native_calibrate: str = _yaml("tools.native-calibrate")
    even_odd: bool = _yaml("tools.even-odd")
    timeouts: Mapping[str, float] = _yaml("tools.timeouts")
    resources: Mapping[str, Mapping[str, float]] = _yaml("tools.resources")
    env: Mapping[str, str | None] = _yaml("tools.env")
    spiceinit_web: bool = _yaml("tools.isis.spiceinit-web")
    stereo_algorithm: str = _yaml("tools.asp.stereo-algorithm")
    subpixel_mode: int = _yaml("tools.asp.subpixel-mode")
    stereo_default: Mapping[str, Any] = _yaml("tools.asp.stereo-default")
    processes: int | None = _yaml("tools.asp.processes")
    threads: int | None = _yaml("tools.asp.threads")
    datum: str = _yaml("tools.asp.datum")
    dem_spacing: float | None = _yaml("tools.asp.dem-spacing")
    orthoimage: bool = _yaml("tools.asp.orthoimage")
    errorimage: bool = _yaml("tools.asp.errorimage")
    pc_align: bool = _yaml("tools.asp.pc-align")
    #: None: from the data (``auto``)
    max_displacement: float | None = None
    alignment_factor: float = _yaml("quality.dem-alignment.factor")
    alignment_floor: float = _yaml("quality.dem-alignment.floor")
    alignment_reruns: int = _yaml("quality.dem-alignment.reruns")
    mola_csv_format: str = _yaml("tools.asp.mola-csv-format")
    dem_geoid: bool = _yaml("tools.asp.dem-geoid")
    geoid: str | None = _yaml("tools.asp.geoid")
    stereo_mode: Literal["monolithic", "tiled", "auto"] = _yaml("tools.asp.stereo-mode")
    tile_size: int = _yaml("tools.asp.tiles.size")
    tile_padding: int = _yaml("tools.asp.tiles.padding")
    lowres_dem: str | None = _yaml("tools.asp.lowres-dem")
    mapproject_tr: float | None = _yaml("tools.asp.mapproject-tr")
    t_srs: str | None = _yaml("tools.asp.t-srs")
    corr_memory_mb: int | None = _yaml("tools.asp.corr-memory-limit-mb")
    #: folder of monthly flats for the native calibration (setting ``flat.dir``)
    flat_dir: str | None = _yaml("flat.dir")

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


def step_timeout(settings: RecipeSettings, name: str, family: str | None = None) -> float:
    """The deadline of step ``name``: setting ``tools.timeouts.<name>`` (else ``<family>``: one for both sides).

    Raises
    ------
    RecipeError
        No deadline is configured (every step of the recipe has one in ``ctxdask.yaml``).
    """
    for key in (name, family):
        if key is not None and key in settings.timeouts:
            return float(settings.timeouts[key])
    raise RecipeError(None, f"no deadline for recipe step {name!r}: set tools.timeouts.{family or name}")


def step_resources(settings: RecipeSettings, name: str) -> dict[str, float]:
    """The dask worker resources of step ``name`` (setting ``tools.resources.<name>``; empty if unset)."""
    return dict(settings.resources.get(name, {}))
