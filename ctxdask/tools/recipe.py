"""The CTX stereo chain as data.

A :class:`Recipe` is two tuples of :class:`Step`: the image steps, run once per
image (ingest, SPICE, calibration), and the pair steps, run once per stereo pair
(map projection, correlation, DEM, optional alignment to MOLA and areoid
heights). A step names its program, its argv template, its inputs and outputs
(file names relative to the step's work directory), its deadline and the dask
worker resources it needs. Nothing here runs anything: :meth:`Recipe.image_calls`
and :meth:`Recipe.pair_calls` render the templates for concrete product ids
into :class:`StepCall` objects, which :func:`ctxdask.tools.tasks.run_step`
executes. The commands follow the ASP documentation's CTX example
(``docs/examples/ctx.rst``) and the ISIS application documentation::

    mroctx2isis from=P.IMG to=P.cub
    spiceinit from=P.cub [web=yes]
    ctxcal from=P.cub to=P.cal.cub
    ctxevenodd from=P.cal.cub to=P.lev1eo.cub          (summing 1 only)
    cam2map4stereo.py L.cal.cub R.cal.cub               -> L.map.cub R.map.cub
    parallel_stereo --stereo-algorithm asp_mgm --subpixel-mode 9 \\
        L.map.cub R.map.cub results/out                 -> results/out-PC.tif, -L.tif
    point2dem -r mars [--tr S] [--t_srs P] --orthoimage --errorimage results/out-PC.tif results/out-L.tif
    pc_align --max-displacement D --datum D_MARS --csv-format '1:lon 2:lat 3:radius_km' \\
        --save-inv-transformed-reference-points results/out-PC.tif mola.csv -o results/out-align
        (native step ctxdask.tools.align: D = 3 x median |DEM - MOLA|, rerun on pc_align's warning)
    point2dem -r mars --tr S --t_srs P --orthoimage --errorimage \\
        results/out-align-trans_reference.tif results/out-L.tif -o results/out-align
        (native step ctxdask.tools.align:grid_aligned: S and P of the unaligned DEM)
    dem_geoid --geoid MOLA results/out[-align]-DEM.tif -o results/out[-align]-DEM
        -> results/out[-align]-DEM-adj.tif (without -o: ./out[-align]-DEM-adj.tif, dem_geoid.cc:248)

Tiled stereo aligns the DEM mosaic: pc_align then writes a 3-band cloud
(pc_align_utils.cc:462-486), which has no triangulation error, so the aligned
orthoimage and error image are the mosaics' draped on the moved points
(point2dem ``--orthoimage`` with them as textures, see :func:`ctxdask.tools.align.grid_aligned`).

With ``tools.calibration: native`` the three ISIS calibration programs are
replaced by one native step (a Python callable, run in its own process under
the same deadline machinery) that writes the level-1 cube; ``spiceinit`` then
runs on that cube. The default callable also writes the image's quality
metrics and thumbnail in the same pass (outputs ``quality`` and ``thumbnail``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Literal

from ctxdask import config
from ctxdask.product_id import check_product_id

__all__ = [
    "LOWRES_DEM",
    "NATIVE_QUALITY_OUTPUTS",
    "Ref",
    "Recipe",
    "RecipeSettings",
    "Step",
    "StepCall",
    "StagedInput",
    "TILED_PREP_STEPS",
    "build_recipe",
    "check_product_id",
]


@dataclasses.dataclass(frozen=True)
class Ref:
    """An output of another step: ``Ref("spiceinit-P02_001981_1823_XI_02N356W", "cube")``."""

    key: str
    role: str


@dataclasses.dataclass(frozen=True)
class StagedInput:
    """An input file placed in the step's work directory before the program runs.

    Attributes
    ----------
    name : str
        Path relative to the work dir under which the program sees it.
    source : str or Ref
        A file path given by the caller, or an output of an upstream step.
    copy : bool
        Copy instead of symlink: the program modifies it in place (``spiceinit``),
        and the upstream step's output must stay as it was (rerun safety).
    """

    name: str
    source: str | Ref
    copy: bool = False


@dataclasses.dataclass(frozen=True)
class StepCall:
    """One step rendered for concrete products: everything a worker needs (picklable).

    ``argv`` holds file names relative to the work dir; ``files`` are small text
    files (``stereo.default``) written there before the program starts.
    """

    key: str
    step: str
    kind: Literal["program", "native"]
    argv: tuple[str, ...]
    inputs: Mapping[str, StagedInput]
    outputs: Mapping[str, str]
    timeout: float
    resources: Mapping[str, float]
    files: Mapping[str, str] = dataclasses.field(default_factory=dict)
    callable: str | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    env: Mapping[str, str | None] = dataclasses.field(default_factory=dict)
    names: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def program(self) -> str:
        """The executable (for native steps, the callable's ``module:function``)."""
        return self.callable if self.kind == "native" else self.argv[0]

    @property
    def upstream(self) -> list[str]:
        """Keys of the steps whose outputs this one reads."""
        return sorted({i.source.key for i in self.inputs.values() if isinstance(i.source, Ref)})


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of the chain, as a template.

    Attributes
    ----------
    name : str
        Unique, dot-free (it is a settings key: ``tools.timeouts.<name>``).
    program : str or None
        Executable name; ``None`` for a native step.
    args : tuple of str
        Arguments after the program; ``str.format`` templates over ``id``,
        ``left``, ``right``, ``pair``, ``inputs[role]`` and ``outputs[role]``.
    inputs : mapping
        role -> ``(name template, source)``; source is ``"edr"``, ``"mola"``
        (paths given by the caller), ``"left"``/``"right"`` (the final cube of
        that image), or ``"<step>:<role>"`` (an output of a step of the same
        scope).
    outputs : mapping
        role -> file name template, relative to the work dir.
    timeout : float
        Default deadline in seconds.
    resources : mapping
        dask worker resources, e.g. ``{"stereo": 1}``.
    scope : {"image", "pair"}
    copy_inputs : frozenset
        Roles the program changes in place (staged as copies).
    files : mapping
        name -> content of small files written into the work dir.
    kind : {"program", "native"}
    callable : str, optional
        ``module:function`` of a native step.
    options : mapping
        Keyword arguments of the native callable.
    """

    name: str
    program: str | None
    args: tuple[str, ...]
    inputs: Mapping[str, tuple[str, str]]
    outputs: Mapping[str, str]
    timeout: float
    resources: Mapping[str, float] = dataclasses.field(default_factory=dict)
    scope: Literal["image", "pair"] = "image"
    copy_inputs: frozenset[str] = frozenset()
    files: Mapping[str, str] = dataclasses.field(default_factory=dict)
    kind: Literal["program", "native"] = "program"
    callable: str | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if "." in self.name or not self.name:
            raise ValueError(f"step name {self.name!r} must be non-empty and dot-free")
        if (self.kind == "native") != (self.callable is not None):
            raise ValueError(f"step {self.name}: a native step needs a callable, a program step none")

    def key_for(self, names: Mapping[str, str]) -> str:
        """Deterministic task key of this step for the given products."""
        if self.scope == "image":
            return f"{self.name}-{names['id']}"
        return f"{self.name}-{names['left']}-{names['right']}"

    def render(
        self,
        names: Mapping[str, str],
        sources: Mapping[str, str | Ref],
        *,
        env: Mapping[str, str | None] | None = None,
    ) -> StepCall:
        """Fill the templates; ``sources`` maps this step's input roles to paths or refs."""
        inputs = {
            role: StagedInput(name.format(**names), sources[role], copy=role in self.copy_inputs)
            for role, (name, _) in self.inputs.items()
        }
        outputs = {role: name.format(**names) for role, name in self.outputs.items()}
        fields = dict(names, inputs={r: i.name for r, i in inputs.items()}, outputs=outputs)
        args = tuple(a.format(**fields) for a in self.args)
        if self.kind == "native":
            # run in a fresh interpreter so the same deadline and kill machinery applies
            options = json.dumps(dict(self.options), sort_keys=True)
            argv = ("python", "-m", "ctxdask.tools.native", self.callable, *args,
                    "--options", options)
        else:
            argv = (self.program, *args)
        return StepCall(
            key=self.key_for(names),
            step=self.name,
            kind=self.kind,
            argv=argv,
            inputs=inputs,
            outputs=outputs,
            timeout=float(self.timeout),
            resources=dict(self.resources),
            files=dict(self.files),
            callable=self.callable,
            options=dict(self.options),
            env=dict(env or {}),
            names=dict(names),
        )


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


#: extra outputs of the default native calibration: per-image quality (ctxdask.quality)
NATIVE_QUALITY_OUTPUTS = {"quality": "{id}.quality.json", "thumbnail": "{id}.thumb.png"}


def _stereo_default_text(options: Mapping[str, Any]) -> str:
    lines = ["# stereo.default written by ctxdask (settings tools.asp.stereo-default)"]
    for key, value in options.items():
        if value is True:
            lines.append(key)
        elif value is False or value is None:
            continue
        elif isinstance(value, (list, tuple)):
            lines.append(f"{key} {' '.join(str(v) for v in value)}")
        else:
            lines.append(f"{key} {value}")
    return "\n".join(lines) + "\n"


#: tiled stereo: the pair steps before the tiles, in order
TILED_PREP_STEPS = ("mapproject_grid", "mapproject_left", "mapproject_right", "stereo_parse", "stereo_stats")
#: the name of the low-resolution DEM in every tiled step's work dir: mapproject records the DEM
#: argument as given (DEM_FILE) and stereo_parse/stereo_pprc/stereo_tile require their --dem to be that
#: same string (src/asp/Sessions/StereoSession.cc:148-160), so it is one relative name on every worker
LOWRES_DEM = "lowres-dem.tif"

#: fraction of a tile's memory resource given to the correlator (--corr-memory-limit-mb): the SGM/MGM
#: buffers are most of a tile's memory, and ASP stays "slightly above" the limit (docs/stereodefault.rst)
CORR_MEMORY_SHARE = 0.8


def _tiled_pair_steps(s: RecipeSettings, t, r, stereo_args: list[str],
                      files: Mapping[str, str]) -> tuple[list[Step], Step, tuple[Step, ...]]:
    """The pair steps of ASP's distributed stereo, run by ctxdask instead of ``stereo_dist``.

    ``stereo_dist`` (src/asp/Tools/stereo_dist in NeoGeographyToolkit/StereoPipeline)
    drives its tiles with GNU Parallel over SSH on shared storage; ctxdask runs
    the same programs itself: ``mapproject`` of both images onto the
    low-resolution DEM on one explicit grid (``--t_srs --tr --t_projwin``, the
    finer pixel size and the footprints' intersection, chosen by querying both
    cameras as ``stereo_dist`` does: :mod:`ctxdask.tools.mapgrid`; ``--ref-map``
    would leave the right image in another projection), ``stereo_parse
    --stereo-dist-tile-params SIZE PAD`` (the tile list,
    ``<prefix>-distTileList.txt``), ``stereo_pprc --stop-after-stats`` (the
    statistics every tile reuses), then one ``stereo_tile --tile-index i``
    per tile (entry point 0 to stop point 8: preprocessing through point2dem)
    and ``dem_mosaic`` of the tiles' DEMs, orthoimages and error images.

    Returns (prep steps, tile template, mosaic templates); the tile and mosaic
    steps are rendered per pair by :mod:`ctxdask.tools.tiling` once the tile
    list is known.
    """
    dem = (LOWRES_DEM, "lowres_dem")
    maps = {"left": ("{left}.map.tif", "mapproject_left:map"),
            "right": ("{right}.map.tif", "mapproject_right:map")}
    cams = {"left_cam": ("{left}.cal.cub", "left"), "right_cam": ("{right}.cal.cub", "right")}
    # images, cameras (ISIS cubes carry them), output prefix, and the mapprojection DEM
    positional = ("{inputs[left]}", "{inputs[right]}", "{inputs[left_cam]}", "{inputs[right_cam]}",
                  "results/out", "--dem", "{inputs[dem]}")
    stereo_inputs = {**maps, **cams, "dem": dem}
    mp = t("mapproject", 3600)
    grid_file = ("{pair}.grid.json", "mapproject_grid:grid")

    def on_grid(side: str) -> Step:
        name = f"mapproject_{side}"
        return Step(name, None, ("{inputs[image]}", "{outputs[map]}", "--output", "grid={inputs[grid]}",
                                 "--output", "dem={inputs[dem]}"),
                    {"image": cams[f"{side}_cam"], "dem": dem, "grid": grid_file}, {"map": f"{{{side}}}.map.tif"},
                    t(name, mp), r(name) or r("mapproject"), scope="pair", kind="native",
                    callable="ctxdask.tools.mapgrid:mapproject_on_grid", options={"timeout": t(name, mp)})

    prep = [
        Step("mapproject_grid", None, ("{inputs[left]}", "{outputs[grid]}", "--output", "right={inputs[right]}",
                                       "--output", "dem={inputs[dem]}"),
             {"left": cams["left_cam"], "right": cams["right_cam"], "dem": dem}, {"grid": "{pair}.grid.json"},
             t("mapproject_grid", 600), r("mapproject_grid"), scope="pair", kind="native",
             callable="ctxdask.tools.mapgrid:common_grid",
             options={"t_srs": s.t_srs, "tr": s.mapproject_tr, "timeout": t("mapproject_grid", 600)}),
        on_grid("left"),
        on_grid("right"),
        Step("stereo_parse", "stereo_parse",
             (*stereo_args, *positional, "--stereo-dist-tile-params", str(int(s.tile_size)),
              str(int(s.tile_padding))),
             stereo_inputs, {"tiles": "results/out-distTileList.txt"},
             t("stereo_parse", 600), r("stereo_parse"), scope="pair", files=files),
        # gather_stats names them <prefix>-<image stem>-stats.tif (src/asp/Core/ImageUtils.cc)
        Step("stereo_stats", "stereo_pprc",
             (*stereo_args, *positional, "--stop-after-stats",
              *(("--threads", str(int(s.threads))) if s.threads else ())),
             stereo_inputs, {"left_stats": "results/out-{left}.map-stats.tif",
                             "right_stats": "results/out-{right}.map-stats.tif"},
             t("stereo_stats", 1800), r("stereo_stats"), scope="pair", files=files),
    ]
    resources = r("stereo_tile") or {"stereo": 1}
    corr = s.corr_memory_mb
    if corr is None and resources.get("memory_mb"):
        corr = int(float(resources["memory_mb"]) * CORR_MEMORY_SHARE)
    tile_args = ["--tile-index", "{tile_index}", "--entry-point", "0", "--stop-point", "8",
                 "--point2dem-options", "{point2dem_options}"]
    if corr:
        tile_args += ["--corr-memory-limit-mb", str(int(corr))]
    if s.threads:
        tile_args += ["--threads", str(int(s.threads))]
    tile = Step("stereo_tile", "stereo_tile", (*tile_args, *stereo_args, *positional),
                {**stereo_inputs, "tiles": ("results/out-distTileList.txt", "stereo_parse:tiles"),
                 "left_stats": ("results/out-{left}.map-stats.tif", "stereo_stats:left_stats"),
                 "right_stats": ("results/out-{right}.map-stats.tif", "stereo_stats:right_stats")},
                {"dem": "{tile_prefix}-DEM.tif",
                 **({"ortho": "{tile_prefix}-DRG.tif"} if s.orthoimage else {}),
                 **({"error": "{tile_prefix}-IntersectionErr.tif"} if s.errorimage else {})},
                t("stereo_tile", 7200), resources, scope="pair", files=files)
    mosaics = [("dem_mosaic", "dem", "DEM", True), ("dem_mosaic_ortho", "ortho", "DRG", s.orthoimage),
               ("dem_mosaic_error", "error", "IntersectionErr", s.errorimage)]
    mosaic_steps = tuple(
        Step(name, "dem_mosaic", ("--dem-list", f"{suffix}-tiles.txt", "-o", "{outputs[%s]}" % role),
             {}, {role: f"results/out-{suffix}.tif"}, t(name, 3600), r(name), scope="pair")
        for name, role, suffix, wanted in mosaics if wanted)
    return prep, tile, mosaic_steps


class Recipe:
    """The CTX chain for given settings.

    Parameters
    ----------
    settings : RecipeSettings

    Attributes
    ----------
    image_steps, pair_steps : tuple of Step
        The chain, in order.
    """

    def __init__(self, settings: RecipeSettings):
        self.settings = s = settings
        t = lambda name, default: s.timeouts.get(name, default)  # noqa: E731
        r = lambda name: dict(s.resources.get(name, {}))  # noqa: E731

        image: list[Step] = []
        if s.calibration == "native":
            args: tuple[str, ...] = ("{inputs[edr]}", "{outputs[cube]}")
            outputs = {"cube": "{id}.cal.cub"}
            if s.native_calibrate == RecipeSettings.native_calibrate:
                # the default callable measures quality in the same pass over the EDR
                outputs.update(NATIVE_QUALITY_OUTPUTS)
                args += tuple(a for role in NATIVE_QUALITY_OUTPUTS
                              for a in ("--output", f"{role}={{outputs[{role}]}}"))
            image.append(Step(
                "calibrate", None, args,
                {"edr": ("{id}.IMG", "edr")}, outputs,
                t("calibrate", 1800), r("calibrate"),
                kind="native", callable=s.native_calibrate,
                # a flat folder reaches ctxdask.calibrate, which picks the image's month from it
                options={"even_odd": s.even_odd, **({"flat": str(s.flat_dir)} if s.flat_dir else {})},
            ))
            image.append(Step(
                "spiceinit", "spiceinit",
                ("from={inputs[cube]}", *(("web=yes",) if s.spiceinit_web else ())),
                {"cube": ("{id}.cal.cub", "calibrate:cube")}, {"cube": "{id}.cal.cub"},
                t("spiceinit", 900), r("spiceinit"), copy_inputs=frozenset({"cube"}),
            ))
        else:
            image.append(Step(
                "mroctx2isis", "mroctx2isis",
                ("from={inputs[edr]}", "to={outputs[cube]}"),
                {"edr": ("{id}.IMG", "edr")}, {"cube": "{id}.cub"},
                t("mroctx2isis", 900), r("mroctx2isis"),
            ))
            image.append(Step(
                "spiceinit", "spiceinit",
                ("from={inputs[cube]}", *(("web=yes",) if s.spiceinit_web else ())),
                {"cube": ("{id}.cub", "mroctx2isis:cube")}, {"cube": "{id}.cub"},
                t("spiceinit", 900), r("spiceinit"), copy_inputs=frozenset({"cube"}),
            ))
            image.append(Step(
                "ctxcal", "ctxcal",
                ("from={inputs[cube]}", "to={outputs[cube]}"),
                {"cube": ("{id}.cub", "spiceinit:cube")}, {"cube": "{id}.cal.cub"},
                t("ctxcal", 900), r("ctxcal"),
            ))
            image.append(Step(
                "ctxevenodd", "ctxevenodd",
                ("from={inputs[cube]}", "to={outputs[cube]}"),
                {"cube": ("{id}.cal.cub", "ctxcal:cube")}, {"cube": "{id}.lev1eo.cub"},
                t("ctxevenodd", 900), r("ctxevenodd"),
            ))
        self.image_steps: tuple[Step, ...] = tuple(image)

        stereo_args: list[str] = [
            "--stereo-algorithm", str(s.stereo_algorithm),
            "--subpixel-mode", str(s.subpixel_mode),
        ]
        files = {}
        if s.stereo_default:
            files["stereo.default"] = _stereo_default_text(s.stereo_default)
            stereo_args += ["--stereo-file", "stereo.default"]
        pair: list[Step] = []
        #: tiled mode: the per-tile template and the mosaics (rendered by ctxdask.tools.tiling)
        self.tile_step: Step | None = None
        self.mosaic_steps: tuple[Step, ...] = ()
        if s.stereo_mode == "tiled":
            prep, self.tile_step, self.mosaic_steps = _tiled_pair_steps(s, t, r, stereo_args, files)
            pair += prep
        else:
            pair.append(Step(
                "cam2map4stereo", "cam2map4stereo.py",
                ("{inputs[left]}", "{inputs[right]}"),
                {"left": ("{left}.cal.cub", "left"), "right": ("{right}.cal.cub", "right")},
                {"left": "{left}.map.cub", "right": "{right}.map.cub"},
                t("cam2map4stereo", 7200), r("cam2map4stereo"), scope="pair",
            ))
            if s.processes:
                stereo_args += ["--processes", str(int(s.processes))]
            if s.threads:
                stereo_args += ["--threads-multiprocess", str(int(s.threads))]
            pair.append(Step(
                "parallel_stereo", "parallel_stereo",
                (*stereo_args, "{inputs[left]}", "{inputs[right]}", "results/out"),
                {"left": ("{left}.map.cub", "cam2map4stereo:left"),
                 "right": ("{right}.map.cub", "cam2map4stereo:right")},
                {"pc": "results/out-PC.tif", "aligned_left": "results/out-L.tif"},
                t("parallel_stereo", 43200), r("parallel_stereo"), scope="pair", files=files,
            ))

        def point2dem(name: str, cloud: tuple[str, str], prefix: str) -> Step:
            args = ["-r", str(s.datum)]
            if s.dem_spacing:
                args += ["--tr", f"{float(s.dem_spacing):g}"]
            if s.t_srs:
                args += ["--t_srs", str(s.t_srs)]
            outputs = {"dem": f"{prefix}-DEM.tif"}
            if s.orthoimage:
                args.append("--orthoimage")
                outputs["ortho"] = f"{prefix}-DRG.tif"
            if s.errorimage:
                args.append("--errorimage")
                outputs["error"] = f"{prefix}-IntersectionErr.tif"
            args.append("{inputs[cloud]}")
            inputs = {"cloud": cloud}
            if s.orthoimage and s.stereo_mode == "tiled":
                # no whole-pair L.tif to drape: the orthoimage is the mosaic of the tiles' DRGs
                args.remove("--orthoimage")
                del outputs["ortho"]
            elif s.orthoimage:
                # texture files follow the point clouds on the command line
                args.append("{inputs[texture]}")
                inputs["texture"] = ("results/out-L.tif", "parallel_stereo:aligned_left")
            if prefix != "results/out":
                args += ["-o", prefix]
            return Step(name, "point2dem", tuple(args), inputs, outputs,
                        t(name, 7200), r(name), scope="pair")

        if s.stereo_mode == "tiled":
            # pc_align reads a DEM as a cloud (docs/tools/pc_align.rst): align the mosaic
            cloud = ("results/out-DEM.tif", "dem_mosaic:dem")
            unaligned = ("results/out-DEM-mosaic.tif", "dem_mosaic:dem")
        else:
            pair.append(point2dem("point2dem", ("results/out-PC.tif", "parallel_stereo:pc"), "results/out"))
            cloud = ("results/out-PC.tif", "parallel_stereo:pc")
            unaligned = ("results/out-DEM.tif", "point2dem:dem")
        dem_source = "dem_mosaic:dem" if s.stereo_mode == "tiled" else "point2dem:dem"
        dem_name = "results/out-DEM.tif"
        if s.pc_align:
            # native: max displacement from the data, a rerun when pc_align warns (ctxdask.tools.align)
            align_outputs = {"transform": "results/out-align-transform.txt",
                             "runs": "results/out-align-runs.json",
                             "beg_errors": "results/out-align-beg_errors.csv",
                             "end_errors": "results/out-align-end_errors.csv",
                             "points": "results/out-align-mola.csv"}
            pair.append(Step(
                "pc_align", None,
                ("{inputs[cloud]}", "{outputs[cloud]}", "--output", "mola={inputs[mola]}",
                 "--output", "dem={inputs[dem]}",
                 *(a for role in align_outputs for a in ("--output", f"{role}={{outputs[{role}]}}")
                   if role in ("runs", "transform", "points"))),
                {"cloud": cloud, "mola": ("mola.csv", "mola"), "dem": unaligned},
                {"cloud": "results/out-align-trans_reference.tif", **align_outputs},
                t("pc_align", 7200), r("pc_align"), scope="pair",
                kind="native", callable="ctxdask.tools.align:align_to_mola",
                options={"csv_format": s.mola_csv_format, "datum": "D_MARS", "factor": s.alignment_factor,
                         "floor": s.alignment_floor, "reruns": s.alignment_reruns,
                         "max_displacement": s.max_displacement, "timeout": t("pc_align", 7200)},
            ))
            # native: point2dem of the moved cloud on the unaligned DEM's projection and grid size
            grid_inputs = {"cloud": ("results/out-align-trans_reference.tif", "pc_align:cloud"), "like": unaligned}
            grid_outputs = {"dem": "results/out-align-DEM.tif"}
            if s.orthoimage:
                grid_inputs["texture"] = (("results/out-DRG.tif", "dem_mosaic_ortho:ortho") if s.stereo_mode == "tiled"
                                          else ("results/out-L.tif", "parallel_stereo:aligned_left"))
                grid_outputs["ortho"] = "results/out-align-DRG.tif"
            if s.errorimage:
                if s.stereo_mode == "tiled":  # the mosaic's 3-band cloud has no error: drape the error mosaic
                    grid_inputs["error_texture"] = ("results/out-IntersectionErr.tif", "dem_mosaic_error:error")
                grid_outputs["error"] = "results/out-align-IntersectionErr.tif"
            pair.append(Step(
                "point2dem_aligned", None,
                ("{inputs[cloud]}", "{outputs[dem]}",
                 *(a for role in grid_inputs if role != "cloud" for a in ("--output", f"{role}={{inputs[{role}]}}")),
                 *(a for role in grid_outputs if role != "dem" for a in ("--output", f"{role}={{outputs[{role}]}}"))),
                grid_inputs, grid_outputs, t("point2dem_aligned", 7200), r("point2dem_aligned"), scope="pair",
                kind="native", callable="ctxdask.tools.align:grid_aligned",
                options={"datum": str(s.datum), "timeout": t("point2dem_aligned", 7200)},
            ))
            dem_source, dem_name = "point2dem_aligned:dem", "results/out-align-DEM.tif"
        if s.dem_geoid:
            geoid = ("--geoid", str(s.geoid)) if s.geoid else ()
            # an explicit prefix: without -o the output is ./<stem>-adj.tif (dem_geoid.cc:248-249, 489)
            pair.append(Step(
                "dem_geoid", "dem_geoid", (*geoid, "{inputs[dem]}", "-o", dem_name[: -len(".tif")]),
                {"dem": (dem_name, dem_source)},
                {"dem": dem_name[: -len(".tif")] + "-adj.tif"},
                t("dem_geoid", 1800), r("dem_geoid"), scope="pair",
            ))
        self.pair_steps: tuple[Step, ...] = tuple(pair)

    # ------------------------------------------------------------------ queries
    @property
    def steps(self) -> tuple[Step, ...]:
        """All steps, image steps first."""
        return self.image_steps + self.pair_steps

    def programs(self) -> dict[str, list[str]]:
        """Executable -> names of the steps that run it (native steps need ``python``)."""
        out: dict[str, list[str]] = {}
        for step in self.steps:
            out.setdefault(step.program or "python", []).append(step.name)
        return out

    def __repr__(self) -> str:
        names = " -> ".join(s.name for s in self.image_steps)
        pairs = " -> ".join(s.name for s in self.pair_steps)
        return f"<Recipe image: {names} | pair: {pairs}>"

    # ---------------------------------------------------------------- rendering
    def image_calls(self, product_id: str, edr: str, *, summing: int | None = None) -> list[StepCall]:
        """Render the image steps for one EDR.

        Parameters
        ----------
        product_id : str
            The product id (validated by :func:`check_product_id`).
        edr : str
            Path of the EDR on the worker.
        summing : int, optional
            SAMPLING_FACTOR of the image. Summing-2 images skip the even/odd
            correction, which ISIS defines for summing 1 only.
        """
        names = {"id": check_product_id(product_id)}
        skip_evenodd = summing == 2 or not self.settings.even_odd
        calls: list[StepCall] = []
        keys: dict[str, str] = {}
        for step in self.image_steps:
            if step.name == "ctxevenodd" and skip_evenodd:
                continue
            sources = {}
            for role, (_, src) in step.inputs.items():
                sources[role] = edr if src == "edr" else Ref(keys[src.split(":")[0]], src.split(":")[1])
            if step.kind == "native" and skip_evenodd:
                step = dataclasses.replace(step, options={**step.options, "even_odd": False})
            call = step.render(names, sources, env=self.settings.env)
            keys[step.name] = call.key
            calls.append(call)
        return calls

    def pair_calls(
        self,
        left: StepCall | str,
        right: StepCall | str,
        *,
        left_id: str | None = None,
        right_id: str | None = None,
        mola: str | None = None,
        lowres_dem: str | None = None,
    ) -> list[StepCall]:
        """Render the pair steps.

        Parameters
        ----------
        left, right : StepCall or str
            The last image call of each image (its ``cube`` output is used), or a
            path to an existing level-1, spiceinit-ed cube.
        left_id, right_id : str, optional
            Product ids; taken from the image calls when those are given.
        mola : str, optional
            MOLA point file (CSV) for ``pc_align``; required when it is enabled.
        lowres_dem : str, optional
            Tiled mode: the low-resolution DEM to mapproject onto (default:
            setting ``tools.asp.lowres-dem``). The tile and mosaic steps are
            rendered by :mod:`ctxdask.tools.tiling`; steps after the mosaic
            refer to it by its deterministic key.
        """
        def side(value, pid, which):
            if isinstance(value, StepCall):
                return (pid or value.names["id"]), Ref(value.key, "cube")
            if pid is None:
                raise ValueError(f"{which}_id is needed when {which} is a path")
            return pid, value

        lid, lsrc = side(left, left_id, "left")
        rid, rsrc = side(right, right_id, "right")
        names = {"left": check_product_id(lid), "right": check_product_id(rid), "pair": f"{lid}-{rid}"}
        if self.settings.pc_align and not mola:
            raise ValueError("pc_align is enabled (tools.asp.pc-align) but no MOLA point file was given")
        lowres_dem = lowres_dem or self.settings.lowres_dem
        if self.tile_step is not None and not lowres_dem:
            raise ValueError("tiled stereo needs a low-resolution DEM to mapproject onto (MOLA MEGDR or the "
                             "MOLA/HRSC blend, ellipsoid heights): set tools.asp.lowres-dem")
        later = {m.name: m.key_for(names) for m in self.mosaic_steps}
        calls: list[StepCall] = []
        keys: dict[str, str] = {}
        for step in self.pair_steps:
            sources: dict[str, str | Ref] = {}
            for role, (_, src) in step.inputs.items():
                if src == "left":
                    sources[role] = lsrc
                elif src == "right":
                    sources[role] = rsrc
                elif src == "mola":
                    sources[role] = mola
                elif src == "lowres_dem":
                    sources[role] = lowres_dem
                else:
                    name, out_role = src.split(":")
                    sources[role] = Ref(keys[name] if name in keys else later[name], out_role)
            call = step.render(names, sources, env=self.settings.env)
            keys[step.name] = call.key
            calls.append(call)
        return calls


def build_recipe(**overrides: Any) -> Recipe:
    """Build the CTX recipe from the current settings plus per-run ``overrides``.

    Examples
    --------
    >>> recipe = build_recipe(timeouts={"parallel_stereo": 3600}, calibration="native")
    >>> [s.name for s in recipe.image_steps]
    ['calibrate', 'spiceinit']
    """
    return Recipe(RecipeSettings.from_config(**overrides))
