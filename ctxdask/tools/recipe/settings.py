"""The ``tools`` settings a recipe is built from, and the per-step deadline and resources they give."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from ctxdask import config

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
        tools = config.get("tools", {}) or {}
        isis = tools.get("isis", {}) or {}
        asp = tools.get("asp", {}) or {}
        align = config.get("quality.dem-alignment", {}) or {}
        values: dict[str, Any] = dict(
            calibration=tools.get("calibration", "native"),
            native_calibrate=tools.get("native-calibrate", cls.native_calibrate),
            even_odd=bool(tools.get("even-odd", True)),
            timeouts={k: float(v) for k, v in (tools.get("timeouts") or {}).items()},
            resources={k: dict(v) for k, v in (tools.get("resources") or {}).items()},
            env=dict(tools.get("env") or {}),
            spiceinit_web=bool(isis.get("spiceinit-web", False)),
            stereo_algorithm=asp.get("stereo-algorithm", "asp_mgm"),
            subpixel_mode=int(asp.get("subpixel-mode", 9)),
            stereo_default=dict(asp.get("stereo-default") or {}),
            processes=asp.get("processes"),
            threads=asp.get("threads"),
            datum=asp.get("datum", "mars"),
            dem_spacing=asp.get("dem-spacing"),
            orthoimage=bool(asp.get("orthoimage", True)),
            errorimage=bool(asp.get("errorimage", True)),
            pc_align=bool(asp.get("pc-align", False)),
            max_displacement=(None if asp.get("max-displacement") in (None, "auto")
                              else float(asp.get("max-displacement"))),
            alignment_factor=float(align.get("factor", 3.0)),
            alignment_floor=float(align.get("floor", 10.0)),
            alignment_reruns=int(align.get("reruns", 2)),
            mola_csv_format=asp.get("mola-csv-format", cls.mola_csv_format),
            dem_geoid=bool(asp.get("dem-geoid", False)),
            geoid=asp.get("geoid", "MOLA"),
            stereo_mode=asp.get("stereo-mode", "monolithic"),
            tile_size=int((asp.get("tiles") or {}).get("size", 2048)),
            tile_padding=int((asp.get("tiles") or {}).get("padding", 256)),
            lowres_dem=asp.get("lowres-dem"),
            mapproject_tr=asp.get("mapproject-tr"),
            t_srs=asp.get("t-srs"),
            corr_memory_mb=asp.get("corr-memory-limit-mb"),
            flat_dir=config.get("flat.dir", None),
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
        if values["stereo_mode"] == "auto":
            # ASP 3.7 (2026) brought stereo_tile; older ASP has only parallel_stereo. Tiles need
            # images mapprojected onto a low-resolution DEM: without one configured, monolithic
            import shutil

            tiled = shutil.which("stereo_tile", path=(values["env"] or {}).get("PATH")) and values["lowres_dem"]
            values["stereo_mode"] = "tiled" if tiled else "monolithic"
        return cls(**values)


def step_timeout(settings: RecipeSettings, name: str, default: float) -> float:
    """The deadline of step ``name``: setting ``tools.timeouts.<name>``, else ``default``."""
    return settings.timeouts.get(name, default)


def step_resources(settings: RecipeSettings, name: str) -> dict[str, float]:
    """The dask worker resources of step ``name`` (setting ``tools.resources.<name>``; empty if unset)."""
    return dict(settings.resources.get(name, {}))
