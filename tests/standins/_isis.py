"""Stand-ins for ISIS ``mroctx2isis``, ``spiceinit``, ``ctxcal``, ``ctxevenodd`` (NOT the real ISIS).

Built from DOI-USGS/ISIS3 at 7ca57fa91 (``isis/src/mro/apps/{mroctx2isis,ctxcal,ctxevenodd}``,
``isis/src/base/apps/spiceinit``): the parameters of each program's .xml with their defaults
(:mod:`_isis_cli` parses them as ISIS does), the checks of its .cpp with their messages and
exit codes, and the real outputs:

- ``mroctx2isis`` writes the level-0 cube (SignedWord DN, Tile storage, the translated
  Instrument/Archive/BandBin/Kernels groups, the "Ctx Prefix Dark Pixels" table, History and
  OriginalLabel) with ctxdask's own implementation of the same numbers
  (:func:`ctxdask.open_edr` + :func:`ctxdask.io.isis_write.write_isis`).
- ``spiceinit`` changes the cube IN PLACE, as the real program opens it ReadWrite
  (``spiceinit.cpp:51``): it completes the Kernels group, attaches the InstrumentPointing,
  InstrumentPosition, BodyRotation and SunPosition tables (``spiceinit.cpp:497-553``) and the
  NaifKeywords object, adds a History entry, and never touches the label's other text or the
  pixels. Table records are a plausible constant pointing, not SPICE.
- ``ctxcal`` and ``ctxevenodd`` compute the real pixels with the programs' own equations
  (``ctxcal.cpp:225-279``, ``ctxevenodd/main.cpp:94-142``) into a new Real cube that carries
  the input's label, tables and history (:func:`_isis_cube.write_derived`).

The ISIS data area: with ``ISISDATA`` set, ``ctxcal`` reads its flat field from
``$ISISDATA/mro/calibration`` as the real program does (and fails as it does when the file is
missing). Without it the stand-ins behave as if a data area with the MRO kernels and a unit
flat field were installed; the real programs would stop for want of one.
"""

from __future__ import annotations

import glob
import os
import re

import numpy as np
from _isis_cli import IO, PROGRAMMER, UNKNOWN, USER, IsisError, Param, Ui, report
from _isis_cube import Cube, Key, Node, append_blob, history_entry, write_derived, write_label
from _standin import _apply_fault

_B = "boolean"
_KERNEL_PARAMS = ("LS", "PCK", "TSPK", "IK", "SCLK", "CK", "FK", "SPK", "IAK", "EXTRA")
#: spiceinit.xml:331-880 (the DEFAULT/DATABASE group is commented out there, 507-543)
SPICEINIT = [
    Param("FROM", "cube"),
    Param("WEB", _B, "false", excludes=("ATTACH", *_KERNEL_PARAMS), includes=("URL", "PORT")),
    Param("ATTACH", _B, "TRUE"),
    Param("CKSMITHED", _B, "FALSE"), Param("CKRECON", _B, "TRUE"),
    Param("CKPREDICTED", _B, "FALSE"), Param("CKNADIR", _B, "FALSE"),
    Param("SPKSMITHED", _B, "FALSE"), Param("SPKRECON", _B, "TRUE"), Param("SPKPREDICTED", _B, "FALSE"),
    *(Param(k, "filename", internal_default=True) for k in _KERNEL_PARAMS),
    Param("SHAPE", "string", "SYSTEM", options=("ELLIPSOID", "RINGPLANE", "SYSTEM", "USER"),
          option_excludes={"ELLIPSOID": ("MODEL",), "RINGPLANE": ("MODEL",), "SYSTEM": ("MODEL",)}),
    Param("MODEL", "cube"),
    Param("STARTPAD", "double", "0.0", minimum=0.0), Param("ENDPAD", "double", "0.0", minimum=0.0),
    Param("URL", "string", "https://astrogeology.usgs.gov/apis/ale/v0.9.1/spiceserver/"),
    Param("PORT", "integer", "443", minimum=0),
]
#: mroctx2isis.xml:60-123
MROCTX2ISIS = [
    Param("FROM", "filename"), Param("TO", "cube"),
    Param("PREFIX", "integer", internal_default=True, minimum=0),
    Param("SUFFIX", "integer", internal_default=True, minimum=0),
    Param("FILLGAP", _B, "true"),
]
#: ctxcal.xml:180-249
CTXCAL = [
    Param("FROM", "cube"), Param("TO", "cube"),
    Param("FLATFILE", "cube", internal_default=True), Param("MONTHLYFLAT", _B, "No"),
    Param("IOF", _B, "True"),
]
#: ctxevenodd.xml:42-69
CTXEVENODD = [Param("FROM", "cube"), Param("TO", "cube")]

#: what the simulated data area's kernel database finds for a CTX image (cf. the Kernels
#: group of a real spiceinit-ed CTX cube)
_MRO_KERNELS = {
    "LeapSecond": "$base/kernels/lsk/naif0012.tls",
    "TargetAttitudeShape": "$base/kernels/pck/pck00009.tpc",
    "TargetPosition": ["$base/kernels/spk/de430.bsp", "$base/kernels/spk/mar097.bsp"],
    "InstrumentPointing": ["$mro/kernels/ck/mro_sc_psp_090526_090601.bc", "$mro/kernels/fk/mro_v16.tf"],
    "Instrument": "Null",
    "SpacecraftClock": "$mro/kernels/sclk/MRO_SCLKSCET.00102.65536.tsc",
    "InstrumentPosition": ["$mro/kernels/spk/mro_psp11_ssd_mro110c.bsp"],
    "InstrumentAddendum": "$mro/kernels/iak/mroctxAddendum005.ti",
}
#: MissionName2DataDir.trn:75-76 (the stand-in's data area holds only these)
_MISSIONS = {"MARS RECONNAISSANCE ORBITER": "Mro", "MARS_RECONNAISSANCE_ORBITER": "Mro"}
_TRN = "$ISISROOT/appdata/translations/MissionName2DataDir.trn"
#: the CTX camera's label keywords (CTXCamera reads these from the Instrument group)
_CAMERA_KEYS = ("StartTime", "SpacecraftClockCount", "LineExposureDuration", "SpatialSumming",
                "SampleFirstPixel")
_NAIF = [
    ("BODY_CODE", "499"), ("BODY499_RADII", "(3396.19, 3396.19, 3376.2)"),
    ("BODY_FRAME_CODE", "10014"), ("INS-74021_FOCAL_LENGTH", "352.9271664"),
    ("INS-74021_PIXEL_PITCH", "0.007"), ("INS-74021_TRANSX", "(0.0, 0.0, 0.007)"),
    ("INS-74021_TRANSY", "(0.0, 0.007, 0.0)"), ("INS-74021_ITRANSS", "(0.0, 0.0, 142.85714285714)"),
    ("INS-74021_ITRANSL", "(0.0, 142.85714285714, 0.0)"),
    ("INS-74021_BORESIGHT_SAMPLE", "2543.46099"), ("INS-74021_BORESIGHT_LINE", "0.430442527"),
    ("INS-74021_OD_K", "(-0.0073433925920055, 2.83758786362417e-05, 1.28419891240271e-08)"),
]
_QUAT = ("J2000Q0", "J2000Q1", "J2000Q2", "J2000Q3", "AV1", "AV2", "AV3", "ET")
_STATE = ("J2000X", "J2000Y", "J2000Z", "J2000XV", "J2000YV", "J2000ZV", "ET")


def _run(app: str, params: list[Param], argv: list[str], fault: str | None, body) -> None:
    ui = Ui(app, params, argv)
    try:
        body(ui, fault)
    except IsisError as e:
        report(e)


def _truncate(path: str) -> None:
    """The ``partial`` fault: the output loses its second half, the program still exits 0."""
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


# ------------------------------------------------------------------ mroctx2isis
def mroctx2isis(argv: list[str], fault: str | None) -> None:
    _run("mroctx2isis", MROCTX2ISIS, argv, fault, _mroctx2isis)


def _mroctx2isis(ui: Ui, fault: str | None) -> None:
    from ctxdask import pvltext

    source = ui.get("FROM")
    msg = "File could not be opened."  # main.cpp:47-81: the message names the step that failed
    try:
        with open(source, "rb") as f:
            head = f.read(1 << 20).decode("latin-1")
        end = re.search(r"^END[ \t]*\r?$", head, re.MULTILINE | re.IGNORECASE)  # Pvl reads to END
        label = pvltext.loads(head[: end.end()] if end else head)
        msg = "PVL Keyword [DATA_SET_ID] not found in label."
        data_set = " ".join(str(label["DATA_SET_ID"]).split())
        projected = "IMAGE_MAP_PROJECTION" in label
        msg = ("PVL Keywords [SPATIAL_SUMMING] and [SAMPLING_FACTOR] not found in label.The mroctx2isis "
               "application requires at least one to exist in order to set summing mode.")
        int(label["SPATIAL_SUMMING"] if "SPATIAL_SUMMING" in label else label["SAMPLING_FACTOR"])
        msg = "PVL Keyword [SAMPLE_BIT_MODE_ID] not found in label."
        bit_mode = str(label["SAMPLE_BIT_MODE_ID"])
        msg = ("PVL Keywords [EDIT_MODE_ID] and [SAMPLE_FIRST_PIXEL] not found in label.The mroctx2isis "
               "application requires at least one to exist in order to set edit mode.")
        int(label["EDIT_MODE_ID"] if "EDIT_MODE_ID" in label else label["SAMPLE_FIRST_PIXEL"])
    except Exception as e:  # noqa: BLE001
        raise IsisError(UNKNOWN, msg, IsisError(IO, f"{type(e).__name__}: {e}")) from None
    if projected:  # main.cpp:87-91
        raise IsisError(USER, f"[{os.path.basename(source)}] appears to be an rdr file. Use pds2isis.")
    if data_set != "MRO-M-CTX-2-EDR-L0-V1.0":  # main.cpp:96-100
        raise IsisError(UNKNOWN, f"Input file [{os.path.abspath(source)}] does not appear to be in "
                                 f"MRO-CTX EDR format. DATA_SET_ID is [{data_set}]")
    if bit_mode != "SQROOT":  # main.cpp:103-106
        raise IsisError(USER, f"Can't handle Sample Bit Mode [{bit_mode}]")
    if ui.entered("PREFIX") or ui.entered("SUFFIX") or not ui.boolean("FILLGAP"):
        raise IsisError(USER, "this stand-in computes only the default PREFIX, SUFFIX and FILLGAP=true")
    _apply_fault(fault)
    import ctxdask
    from ctxdask.io.isis_write import write_isis

    out = ui.output_cube("TO")
    import dask

    with dask.config.set(scheduler="synchronous"):
        write_isis(ctxdask.open_edr(source), out, level=0)
    if fault == "partial":
        _truncate(out)


# -------------------------------------------------------------------- spiceinit
def spiceinit(argv: list[str], fault: str | None) -> None:
    _run("spiceinit", SPICEINIT, argv, fault, _spiceinit)


def _spiceinit(ui: Ui, fault: str | None) -> None:
    cube = Cube(ui.cube_name("FROM"))
    _apply_fault(fault)
    if not any(ui.boolean(k) for k in ("CKPREDICTED", "CKRECON", "CKSMITHED", "CKNADIR")):
        raise IsisError(USER, "At least one CK quality must be selected")  # spiceinit.cpp:70-74
    if not any(ui.boolean(k) for k in ("SPKPREDICTED", "SPKRECON", "SPKSMITHED")):
        raise IsisError(USER, "At least one SPK quality must be selected")  # :75-79
    if cube.group("Mapping") is not None:  # :81-93
        raise IsisError(USER, "Can not initialize SPICE for a map projected cube")
    inst = cube.group("Instrument")  # :102-108, MissionName2DataDir.trn
    if inst is None:
        raise IsisError(PROGRAMMER, f"Unable to find input group [IsisCube,Instrument] for output "
                                    f"name [MissionName] in file [{_TRN}]")
    craft = inst.value("SpacecraftName")
    if craft is None:
        raise IsisError(PROGRAMMER, f"Unable to find input keyword [SpacecraftName] for output name "
                                    f"[MissionName] in file [{_TRN}]")
    name = cube.path
    if _MISSIONS.get(craft.upper()) != "Mro" or (inst.value("InstrumentId") or "").upper() != "CTX":
        # the kernel database of the data area has nothing for this image (:191-197)
        raise IsisError(UNKNOWN, f"No Camera Kernels found for the image [{name}]")
    if not (ui.boolean("CKRECON") or ui.boolean("CKNADIR") or ui.entered("CK")):
        raise IsisError(UNKNOWN, f"No Camera Kernels found for the image [{name}]")
    kernels = cube.group("Kernels")
    if kernels is None:  # Cube::group (Cube.cpp) on a cube without one
        raise IsisError(PROGRAMMER, f"Unable to find group [Kernels] in file [{name}]")
    missing = [k for k in _CAMERA_KEYS if inst.value(k) in (None, "")]
    if missing or not (ui.boolean("SPKRECON") or ui.entered("SPK")):
        why = (f"Unable to find keyword [{missing[0]}] in group [Instrument]" if missing
               else "No SPK kernels found")
        raise IsisError(UNKNOWN, "Unable to initialize camera model", IsisError(UNKNOWN, why))

    found = dict(_MRO_KERNELS)
    for param, keyword in (("LS", "LeapSecond"), ("PCK", "TargetAttitudeShape"), ("TSPK", "TargetPosition"),
                           ("IK", "Instrument"), ("SCLK", "SpacecraftClock"), ("SPK", "InstrumentPosition"),
                           ("IAK", "InstrumentAddendum"), ("CK", "InstrumentPointing")):
        if ui.entered(param):  # getUserEnteredKernel (:280-288)
            found[keyword] = [v.strip() for v in ui.get(param).strip("()").split(",")]
    shape = ui.string("SHAPE")
    found["ShapeModel"] = {"SYSTEM": "$base/dems/molaMarsPlanetaryRadius0005.cub", "ELLIPSOID": "Null",
                           "RINGPLANE": "RingPlane"}.get(shape) or ui.get("MODEL")
    for keyword, value in found.items():  # :368-378
        kernels.put(keyword, value)
    kernels.put("InstrumentPositionQuality", "Reconstructed" if ui.boolean("SPKRECON") else "Smithed")
    ck = "Reconstructed" if ui.boolean("CKRECON") else ("Nadir" if ui.boolean("CKNADIR") else "Smithed")
    kernels.put("InstrumentPointingQuality", ck)
    if ui.entered("EXTRA"):
        kernels.put("Extra", ui.get("EXTRA"))
    else:
        kernels.drop("Extra")
    for old in ("Source", "SpacecraftPointing", "SpacecraftPosition", "ElevationModel", "Frame",
                "StartPadding", "EndPadding", "RayTraceEngine", "OnError", "Tolerance"):  # :398-437
        kernels.drop(old)
    for pad, keyword in (("STARTPAD", "StartPadding"), ("ENDPAD", "EndPadding")):  # :440-448
        if float(ui.get(pad)) > 0:
            kernels.put(keyword, f"{float(ui.get(pad)):.14g} <seconds>")
    kernels.put("CameraVersion", 1)
    kernels.put("Source", "ale" if ui.boolean("WEB") else "isis")  # :464-473
    csm = cube.group("CsmInfo")
    if csm is not None:
        cube.isis.remove(csm)  # :264
    for obj in cube.root.nodes("Object", "Polygon"):
        cube.root.remove(obj)  # :97-100

    with open(cube.path, "r+b") as f:
        if ui.boolean("ATTACH") or ui.boolean("WEB"):  # the web service always attaches
            _attach_tables(cube, f, inst, kernels)
        for obj in cube.root.nodes("Object", "NaifKeywords"):  # :555-563
            cube.root.remove(obj)
        cube.root.items.append(Node("Object", "NaifKeywords", [Key(k, v) for k, v in _NAIF]))
        history = cube.root.find("Object", "History")
        old = cube.blob(history) if history is not None else b""
        if history is None:
            history = Node("Object", "History", [Key("Name", "IsisCube")])
            cube.root.items.append(history)
        params = {k: ui.get(k) for k in ("FROM", "WEB", "ATTACH", "SHAPE")}
        append_blob(f, history, old + history_entry("spiceinit", params).encode())
        write_label(f, cube.root, cube.label_bytes, cube.path)
    if fault == "partial":
        _truncate(cube.path)


def _attach_tables(cube: Cube, f, inst: Node, kernels: Node) -> None:
    """The four SPICE tables (:497-534) and the ``Table`` in front of the kernel lists (:536-553)."""
    from ctxdask.radiometry.solar import utc_to_et

    lines, _ = cube.dimensions
    start = utc_to_et(inst.value("StartTime"))
    step = float(inst.value("LineExposureDuration")) / 1000.0 * int(inst.value("SpatialSumming"))
    times = [start, start + lines * step]
    extent = [("CkTableStartTime", f"{times[0]:.14g}"), ("CkTableEndTime", f"{times[1]:.14g}")]
    spk_extent = [(k.replace("Ck", "Spk"), v) for k, v in extent]
    pointing = [[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, t] for t in times]
    position = [[3596.19, 0.0, 0.0, 0.0, 3.4, 0.0, t] for t in times]
    sun = [[2.1e8, 0.0, 0.0, 0.0, 0.0, 0.0, t] for t in times]
    ck, spk, target = (_values(kernels, k) for k in ("InstrumentPointing", "InstrumentPosition",
                                                    "TargetPosition"))
    pck = _values(kernels, "TargetAttitudeShape")
    tables = [
        ("InstrumentPointing", _QUAT, pointing, [
            ("TimeDependentFrames", "(-74000, -74900, 1)"),
            ("ConstantFrames", "(-74021, -74020, -74699, -74690, -74000)"),
            ("ConstantRotation", "(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)"), *extent,
            ("CkTableOriginalSize", str(lines + 1)), ("FrameTypeCode", "3")], ck),
        ("InstrumentPosition", _STATE, position, [
            ("CacheType", "HermiteSpline"), *spk_extent, ("SpkTableOriginalSize", f"{lines + 1}.0")], spk),
        ("BodyRotation", _QUAT, pointing, [
            ("TimeDependentFrames", "(10014, 1)"), *extent, ("CkTableOriginalSize", "2"),
            ("FrameTypeCode", "2"), ("PoleRa", "(317.68143, -0.1061, 0.0)"),
            ("PoleDec", "(52.8865, -0.0609, 0.0)"), ("PrimeMeridian", "(176.63, 350.89198226, 0.0)")],
         target + pck),
        ("SunPosition", _STATE, sun, [("CacheType", "Linear"), *spk_extent,
                                      ("SpkTableOriginalSize", "2.0")], target),
    ]
    for name, fields, records, keys, used in tables:
        for old in [t for t in cube.root.nodes("Object", "Table") if t.value("Name") == name]:
            cube.root.remove(old)
        data = np.asarray(records, dtype="<f8").tobytes()
        node = Node("Object", "Table", [Key("Name", name), Key("StartByte", "0"), Key("Bytes", "0"),
                                         Key("Records", str(len(records))), Key("ByteOrder", "Lsb"),
                                         *(Key(k, v) for k, v in keys),
                                         Key("Description", '"Created by spiceinit"'),
                                         Key("Kernels", "(" + ", ".join(used) + ")")])
        if name == "BodyRotation":
            node.items.append(Key("SolarLongitude", "276.65516622386"))
        node.items += [Node("Group", "Field", [Key("Name", n), Key("Type", "Double"), Key("Size", "1")])
                       for n in fields]
        append_blob(f, node, data)
        cube.root.items.append(node)
    for keyword in ("InstrumentPointing", "InstrumentPosition", "TargetPosition"):
        kernels.put(keyword, ["Table", *_values(kernels, keyword)])


def _values(group: Node, keyword: str) -> list[str]:
    text = (group.key(keyword).value if group.key(keyword) else "").replace("\n", " ")
    return [v.strip().strip('"') for v in text.strip("()").split(",") if v.strip() and v.strip() != "Table"]


# ----------------------------------------------------------------------- ctxcal
def ctxcal(argv: list[str], fault: str | None) -> None:
    _run("ctxcal", CTXCAL, argv, fault, _ctxcal)


def _flat(ui: Ui, cube: Cube) -> tuple[np.ndarray, str]:
    """The 5000-pixel flat field and its file name (ctxcal.cpp:60-85)."""
    data = os.environ.get("ISISDATA")
    if ui.entered("FLATFILE"):
        path = ui.cube_name("FLATFILE")
    elif data is None:
        return np.ones(5000), "$ISISDATA/mro/calibration/ctxFlat_0001.cub"
    elif ui.boolean("MONTHLYFLAT"):
        month = os.path.basename(cube.path)[:3]
        path = os.path.join(data, "mro", "calibration", "ctxFlatFiles", f"{month}.flat.cub")
        if not os.path.exists(path):
            raise IsisError(UNKNOWN, f"Could not find flat file [{path}]. Either the data area is not "
                                     "set or a month is missing.")
    else:
        versions = sorted(glob.glob(os.path.join(data, "mro", "calibration", "ctxFlat_[0-9][0-9][0-9][0-9].cub")))
        if not versions:
            raise IsisError(PROGRAMMER, "No existing files found with a numerical version matching "
                                        f"[ctxFlat_????.cub] in [{os.path.join(data, 'mro', 'calibration')}].")
        path = versions[-1]
    flat = Cube(path)
    values = flat.pixels()[0]
    if values.size < 5000:
        raise IsisError(PROGRAMMER, f"the flat field [{path}] has {values.size} samples, ctxcal reads 5000")
    return values[:5000], flat.path


def _ctxcal(ui: Ui, fault: str | None) -> None:
    cube = Cube(ui.cube_name("FROM"))
    inst = cube.require_group("Instrument")
    if (inst.value("InstrumentId") or "") != "CTX":  # ctxcal.cpp:52-56
        raise IsisError(USER, "This is not a CTX image.  Ctxcal requires a CTX image.")
    flat, flat_name = _flat(ui, cube)
    if cube.group("Radiometry") is not None:  # :88-92
        raise IsisError(USER, f"The CTX image [{cube.path}] has already been radiometrically calibrated")
    try:
        exposure = float(inst.value("LineExposureDuration"))
        summing = int(inst.value("SpatialSumming"))
        first = int(inst.value("SampleFirstPixel"))
        start = inst.value("StartTime")
    except (TypeError, ValueError) as e:
        raise IsisError(PROGRAMMER, f"Unable to read the Instrument group of [{cube.path}]: {e}") from None
    first = first - 38 if first > 0 else first  # :103-105
    darks = cube.table("Ctx Prefix Dark Pixels")["DarkPixels"].astype(np.float64)  # :108-153
    darks = darks.reshape(len(darks), -1)
    if summing == 1:
        dark_a, dark_b = darks[:, 0::2].mean(axis=1), darks[:, 1::2].mean(axis=1)
    else:
        dark_a = dark_b = darks.mean(axis=1)
    iof = 1.0
    if ui.boolean("IOF"):  # :157-201: the camera (spiceinit-ed) or the data area's planet kernels
        from ctxdask.radiometry.solar import iof_factor, sun_mars_distance

        iof = iof_factor(exposure, sun_mars_distance(start).km)
    _apply_fault(fault)
    pixels = cube.pixels()
    lines, samples = pixels.shape
    if len(darks) < lines:
        raise IsisError(PROGRAMMER, f"Array index out of range: {len(darks)} dark records for {lines} lines")
    dark = np.where(np.arange(samples) % 2 == 0, dark_a[:lines, None], dark_b[:lines, None])
    cols = np.arange(samples)
    flat_pix = flat[cols + first] if summing == 1 else (flat[cols * 2 + first] + flat[cols * 2 + first + 1]) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (pixels - dark) / (exposure * flat_pix) if iof == 1 else (pixels - dark) / flat_pix * iof
    radiometry = Node("Group", "Radiometry", [Key("FlatFile", flat_name), Key("iof", f"{iof:.14g}")])
    target = ui.output_cube("TO")
    write_derived(cube, target, out, "Real", "ctxcal", {"FROM": cube.path, "TO": target}, [radiometry])
    if fault == "partial":
        _truncate(target)


# ------------------------------------------------------------------- ctxevenodd
def ctxevenodd(argv: list[str], fault: str | None) -> None:
    _run("ctxevenodd", CTXEVENODD, argv, fault, _ctxevenodd)


def _ctxevenodd(ui: Ui, fault: str | None) -> None:
    cube = Cube(ui.cube_name("FROM"))
    inst = cube.require_group("Instrument")
    if (inst.value("InstrumentId") or "") != "CTX":  # main.cpp:48-52
        raise IsisError(USER, "This is not a CTX image.  Ctxcevenodd requires a CTX image.")
    if int(inst.value("SpatialSumming") or 0) != 1:  # :53-58
        raise IsisError(USER, "CTX images do not have even/odd noise problems if the SpatialSumming "
                              "is greater than one.")
    _apply_fault(fault)
    pixels = cube.pixels()
    odd, even = pixels[:, 0::2], pixels[:, 1::2]  # :101-114: "odd" is the first, 1-based, column
    if not np.isfinite(odd).any() or not np.isfinite(even).any():  # :76-79
        raise IsisError(USER, "Couldn't compute column averages")
    offset = (np.nanmean(even) - np.nanmean(odd)) / 2.0  # :82
    out = pixels.copy()
    out[:, 0::2] += offset
    out[:, 1::2] -= offset
    target = ui.output_cube("TO")
    write_derived(cube, target, out, cube.pixel_type, "ctxevenodd", {"FROM": cube.path, "TO": target})
    if fault == "partial":
        _truncate(target)


PROGRAMS = {"mroctx2isis": mroctx2isis, "spiceinit": spiceinit, "ctxcal": ctxcal, "ctxevenodd": ctxevenodd}
