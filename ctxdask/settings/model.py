"""The model: every setting of ``ctxdask.yaml`` as a typed, frozen section, and reading it from dask.

Each section (:class:`Section`) is a dataclass whose fields default to the yaml's
values and are checked however the section is made. :func:`current` reads dask's
configuration as it is now and checks it whole, once per configuration.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

# importing the settings registers the defaults (ctxdask.yaml) with dask, before any
# dask.config.set of a ctxdask key: one made first would be undone with the whole namespace
from ctxdask import config
from ctxdask.settings.checks import (
    SettingsError,
    _above,
    _at_least,
    _between,
    _checked,
    _convert,
    _hints,
    _kebab,
    _section,
)
from ctxdask.settings.stereo import check_fallbacks

__all__ = ["Section", "Settings", "current", "validate"]


# ----------------------------------------------------------------------------- sections
class Section:
    """Base of the model's sections: defaults from the yaml, built from the settings, checked.

    A section's fields default to ``ctxdask.yaml``'s values, so ``PairSearchSettings()``
    is the shipped configuration. However it is made (from the configuration,
    directly, by :func:`dataclasses.replace`), every field is checked: its kind,
    its range, then the rules a subclass adds in :meth:`check`. Domain code
    subclasses a section to add behaviour without writing its fields again, and
    builds it with :meth:`from_config` or :meth:`from_settings`.
    """

    #: dotted (snake-case) path of the section in the model ("" for the whole model)
    path: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints, fields = _hints(type(self))
        for name, field in fields.items():
            value = getattr(self, name)
            where = f"{self.path}.{_kebab(name)}" if self.path else _kebab(name)
            checked = _checked(value, hints[name], field, where)
            if checked is not value:  # 3 -> 3.0, a list -> a tuple: the model's kinds
                object.__setattr__(self, name, checked)
        self.check()

    def check(self) -> None:
        """Rules beyond kind and range that a subclass adds (raise :class:`SettingsError`)."""

    @classmethod
    def from_settings(cls, settings: Settings, /, **overrides: Any) -> Self:
        """This section of ``settings``, with ``overrides`` (field names) checked like the yaml.

        ``None`` overrides are ignored (an option not given); a mapping override is
        merged into the configured mapping (``timeouts={"stereo": 600}`` changes one step).

        Raises
        ------
        SettingsError
            An override of the wrong kind or value, named by its key.
        TypeError
            An override that is no field of the section.
        """
        base: Any = settings
        for part in cls.path.split(".") if cls.path else ():
            base = getattr(base, part)
        values = {f.name: getattr(base, f.name) for f in dataclasses.fields(cls)}
        for name, value in overrides.items():
            if name not in values:
                raise TypeError(f"{cls.__name__} has no setting {name!r}; it has {', '.join(values)}")
            if value is None:
                continue
            if isinstance(values[name], Mapping) and isinstance(value, Mapping):
                value = {**values[name], **value}
            values[name] = value
        return _section(values, cls, cls.path)

    @classmethod
    def from_config(cls, **overrides: Any) -> Self:
        """This section of the configuration as it is now (:func:`current`), with ``overrides``."""
        return cls.from_settings(current(), **overrides)


def _section_at(path: str):
    """Class decorator (under ``@dataclass``): the section at ``path``, its fields defaulting to the yaml's."""

    def decorate(cls: type) -> type:
        cls.path = path
        hints = typing.get_type_hints(cls)
        for name in cls.__dict__.get("__annotations__", {}):
            if typing.get_origin(hints[name]) is ClassVar:
                continue
            key = f"{path}.{name}" if path else name
            metadata = getattr(cls.__dict__.get(name), "metadata", {})
            kind = hints[name]
            if dataclasses.is_dataclass(kind):
                setattr(cls, name, dataclasses.field(default_factory=kind, metadata=metadata))
                continue
            value = _convert(config.default(_kebab(key)), kind, _kebab(key))
            if isinstance(value, Mapping):
                setattr(cls, name, dataclasses.field(default_factory=functools.partial(copy.deepcopy, value),
                                                     metadata=metadata))
            else:
                setattr(cls, name, dataclasses.field(default=value, metadata=metadata))
        return cls

    return decorate


# ----------------------------------------------------------------------------- the model
@dataclasses.dataclass(frozen=True, kw_only=True)
@_section_at("zarr")
class ZarrSettings(Section):
    """``zarr``: how zarr output is compressed."""

    compressor: Mapping[str, Any] | None


@dataclasses.dataclass(frozen=True, kw_only=True)
@_section_at("validate")
class ValidateSettings(Section):
    """``validate``: what a CHECKSUM mismatch is, and how validation streams."""

    checksum: Literal["warn", "reject"]
    block_lines: int = dataclasses.field(metadata=_at_least(1))


@dataclasses.dataclass(frozen=True, kw_only=True)
@_section_at("flat.build")
class FlatBuildSettings(Section):
    """``flat.build``: how detector flats are built from image stacks."""

    method: Literal["median", "clipped-mean"]
    clip_sigma: float
    trim: float = dataclasses.field(metadata=_between(0, 0.5, high_included=False))
    max_trim: float
    near_dark_dn: float
    min_valid_lines: int
    min_signal_dn: float
    min_usable_columns: float
    min_images: int = dataclasses.field(metadata=_at_least(1))
    bins: int = dataclasses.field(metadata=_at_least(10))
    ratio_range: tuple[float, float]
    split_every: int = dataclasses.field(metadata=_at_least(2))


@dataclasses.dataclass(frozen=True, kw_only=True)
@_section_at("flat")
class FlatSettings(Section):
    """``flat``: the folder of flats and how one is picked per image."""

    dir: str | None
    max_month_gap: int
    build: FlatBuildSettings


@dataclasses.dataclass(frozen=True, kw_only=True)
@_section_at("catalog.download")
class CatalogDownload(Section):
    """``catalog.download``: polite, resumable, verified downloads."""

    semaphore: str
    max_concurrent: int = dataclasses.field(metadata=_at_least(1))
    requests_per_second: float = dataclasses.field(metadata=_above(0))
    retries: int = dataclasses.field(metadata=_at_least(0))
    backoff: float = dataclasses.field(metadata=_at_least(0))
    backoff_max: float = dataclasses.field(metadata=_at_least(0))
    connect_timeout: float = dataclasses.field(metadata=_at_least(0))
    read_timeout: float = dataclasses.field(metadata=_at_least(0))
    verify_attempts: int = dataclasses.field(metadata=_at_least(1))
    checksum: Literal["warn", "reject"] | None
    chunk_bytes: int = dataclasses.field(metadata=_at_least(1))
    user_agent: str


@dataclasses.dataclass(frozen=True, kw_only=True)
@_section_at("catalog.pairs")
class PairSearchSettings(Section):
    """``catalog.pairs``: the stereo-pair finder's criteria."""

    min_overlap: float
    max_emission: float
    min_incidence: float
    max_incidence: float
    max_phase: float
    min_convergence: float
    max_convergence: float
    min_parallax_height: float
    max_parallax_height: float
    preferred_parallax_height: float
    max_shadow_tip_distance: float
    max_solar_azimuth_difference: float
    max_gsd_ratio: float
    max_solar_longitude_difference: float


@dataclasses.dataclass(frozen=True, kw_only=True)
@_section_at("catalog")
class CatalogSettings(Section):
    """``catalog``: PDS index tables, product URLs, the EDR cache."""

    base_url: str
    lowercase_dirs: bool
    cache_dir: str | None
    index_chunk_rows: int = dataclasses.field(metadata=_at_least(1))
    download: CatalogDownload
    pairs: PairSearchSettings


@dataclasses.dataclass(frozen=True, kw_only=True)
@_section_at("tools.isis")
class IsisSettings(Section):
    """``tools.isis``: options of the ISIS programs."""

    spiceinit_web: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
@_section_at("tools.asp.tiles")
class TileSize(Section):
    """``tools.asp.tiles``: tile size and padding of tiled stereo, in map-projected pixels."""

    size: int = dataclasses.field(metadata=_at_least(1))
    padding: int = dataclasses.field(metadata=_at_least(0))


@dataclasses.dataclass(frozen=True, kw_only=True)
@_section_at("tools.asp")
class AspSettings(Section):
    """``tools.asp``: the Ames Stereo Pipeline recipe (stereo, DEMs, alignment, tiles, preview)."""

    stereo_algorithm: str
    subpixel_mode: int
    stereo_default: Mapping[str, Any]
    processes: int | None
    threads: int | None
    datum: str
    dem_spacing: float | None
    orthoimage: bool
    errorimage: bool
    pc_align: bool
    mola_points: str | None
    max_displacement: float | Literal["auto"] | None
    mola_csv_format: str
    dem_geoid: bool
    geoid: str
    stereo_mode: Literal["monolithic", "tiled", "auto"]
    tiles: TileSize
    lowres_dem: str | None
    mapproject_tr: float | None
    t_srs: str | None
    corr_memory_limit_mb: int | None
    bundle_adjust: bool | Literal["auto"]
    bundle_adjust_options: Mapping[str, Any]
    heights_from_dem: bool
    heights_from_dem_uncertainty: float = dataclasses.field(metadata=_above(0))
    preview: bool | Literal["auto"]
    preview_factor: float = dataclasses.field(metadata=_at_least(1))
    preview_seed: bool
    preview_hole_fill: int | None = dataclasses.field(metadata=_at_least(1))
    tile_fallbacks: tuple[Mapping[str, Any], ...]

    def check(self) -> None:
        """Check ``tile-fallbacks`` against the configured algorithm and subpixel mode."""
        check_fallbacks(self.tile_fallbacks, algorithm=self.stereo_algorithm, subpixel_mode=self.subpixel_mode)


@dataclasses.dataclass(frozen=True, kw_only=True)
@_section_at("tools")
class ToolsSettings(Section):
    """``tools``: external programs: deadlines, stopping, resources, environment."""

    grace_period: float = dataclasses.field(metadata=_at_least(0))
    watchdog_grace: float = dataclasses.field(metadata=_at_least(0))
    poll_interval: float = dataclasses.field(metadata=_at_least(0.001))
    log_tail_lines: int = dataclasses.field(metadata=_at_least(0))
    work_dir: str | None
    calibration: Literal["native", "isis"]
    native_calibrate: str
    even_odd: bool
    timeouts: Mapping[str, float]
    resources: Mapping[str, Mapping[str, float]]
    env: Mapping[str, str | None]
    isis: IsisSettings
    asp: AspSettings


@dataclasses.dataclass(frozen=True, kw_only=True)
@_section_at("batch")
class BatchSection(Section):
    """``batch``: the batch driver: cluster, database, retries, delivery, scratch."""

    retries: int = dataclasses.field(metadata=_at_least(0))
    tile_retries: int = dataclasses.field(metadata=_at_least(0))
    min_tile_fraction: float = dataclasses.field(metadata=_between(0, 1))
    hedge_factor: float | None = dataclasses.field(metadata=_at_least(0))
    hedge_after_seconds: float = dataclasses.field(metadata=_at_least(0))
    timeouts: Mapping[str, float]
    watchdog_margin: float
    deliver: tuple[str, ...]
    delivery: Literal["transfer", "shared"]
    chunk_size: int = dataclasses.field(metadata=_at_least(1))
    chunk_window: int = dataclasses.field(metadata=_at_least(1))
    delivery_threads: int = dataclasses.field(metadata=_at_least(1))
    stall_timeout: float
    scratch: str | None
    local_workers: int | None
    local_threads: int = dataclasses.field(metadata=_at_least(1))
    cleanup_scratch: bool
    progress: bool
    progress_interval: float = dataclasses.field(metadata=_at_least(1))
    quality: bool
    # what a run does, and where (at the yaml's top of the section)
    scheduler: str | None
    database: str | None
    retry_failed: bool
    steps: tuple[str, ...] | None
    include_rejected: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
@_section_at("quality.dem_holes")
class DemHoles(Section):
    """``quality.dem-holes``: how holes in a DEM are found and told from failed tiles."""

    max_cells: int = dataclasses.field(metadata=_at_least(1))
    min_tile_pixels: int = dataclasses.field(metadata=_at_least(1))
    rectangularity: float


@dataclasses.dataclass(frozen=True, kw_only=True)
@_section_at("quality.dem_alignment")
class DemAlignment(Section):
    """``quality.dem-alignment``: pc_align's maximum displacement and reruns."""

    factor: float
    floor: float
    reruns: int = dataclasses.field(metadata=_at_least(0))


@dataclasses.dataclass(frozen=True, kw_only=True)
@_section_at("quality.preview")
class PreviewThresholds(Section):
    """``quality.preview``: the preview QA a pair must pass before full resolution."""

    min_valid_fraction: float | None = dataclasses.field(metadata=_between(0, 1))
    max_mola_nmad: float | None = dataclasses.field(metadata=_at_least(0))
    max_mola_median_abs: float | None = dataclasses.field(metadata=_at_least(0))
    max_intersection_error: float | None = dataclasses.field(metadata=_at_least(0))


#: grade thresholds: metric -> {"warn-above"|"fail-above"|"warn-below"|"fail-below": value or null}
Thresholds = Mapping[str, Mapping[Literal["warn-above", "fail-above", "warn-below", "fail-below"], float | None]]


@dataclasses.dataclass(frozen=True, kw_only=True)
@_section_at("quality")
class QualitySettings(Section):
    """``quality``: thumbnails, image and DEM QA, grades."""

    thumbnail_size: int = dataclasses.field(metadata=_at_least(1))
    dem_thumbnail_size: int = dataclasses.field(metadata=_at_least(1))
    stretch_percentiles: tuple[float, float]
    nan: Literal["transparent", "black"]
    contrast_percentiles: tuple[float, float]
    haze_percentile: float
    sun_azimuth: float
    sun_elevation: float
    dem_holes: DemHoles
    dem_alignment: DemAlignment
    preview: PreviewThresholds
    dem_grade: Thresholds
    grade: Thresholds


@dataclasses.dataclass(frozen=True, kw_only=True)
@_section_at("")
class Settings(Section):
    """Every ctxdask setting, checked (see ``ctxdask.yaml`` for what each one does)."""

    chunk_lines: int = dataclasses.field(metadata=_at_least(1))
    zarr: ZarrSettings
    validate: ValidateSettings
    flat: FlatSettings
    catalog: CatalogSettings
    tools: ToolsSettings
    batch: BatchSection
    quality: QualitySettings

    def override(self, changes: Mapping[str, Any]) -> Settings:
        """These settings with ``changes`` (dotted keys, ``{"batch.retries": 3}``), checked.

        A key may go into a mapping of names (``"tools.timeouts.parallel_stereo"``);
        a mapping given whole replaces the configured one.

        Raises
        ------
        SettingsError
            A key that is unknown or a value it may not have, named.
        """
        tree = dataclasses.asdict(self)
        for dotted, value in changes.items():
            parts = dotted.split(".")
            node = tree
            for depth, part in enumerate(parts):
                match = next((k for k in node if str(k).replace("_", "-") == part.replace("_", "-")), part)
                if depth == len(parts) - 1:
                    node[match] = value
                else:  # an unknown key is named, with the known ones, by the check below
                    node = node.setdefault(match, {})
                    if not isinstance(node, dict):
                        where = ".".join(parts[:depth + 1])
                        raise SettingsError(where, f"{node!r} has no setting {parts[depth + 1]!r}")
        return validate(tree)


def validate(values: Mapping[str, Any]) -> Settings:
    """:class:`Settings` from a mapping shaped like ``ctxdask.yaml``'s ``ctxdask`` section.

    Raises
    ------
    SettingsError
        The first key that is unknown, missing or has a value it may not have.
    """
    return _section(values, Settings, "")


def current() -> Settings:
    """The settings as dask's configuration holds them now, checked.

    A configuration seen before is not checked again (keyed by its text, so a
    ``dask.config.set`` of any value gives a fresh check).
    """
    # keys spelt as the yaml spells them (an environment variable's stereo_mode is stereo-mode)
    values = config.current()
    text = repr(values)
    found = _CHECKED.get(text)
    if found is None:
        found = validate(values)
        if len(_CHECKED) >= 16:
            _CHECKED.pop(next(iter(_CHECKED)))
        _CHECKED[text] = found
    return found


#: configurations checked before (text -> Settings), oldest first
_CHECKED: dict[str, Settings] = {}
