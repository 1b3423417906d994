"""Find CTX stereo pairs in a PDS cumulative index.

Each index row gives an image's footprint (four corner latitudes/longitudes),
its viewing and lighting angles at the centre (emission, incidence, phase), the
sub-spacecraft and sub-solar points, the pixel scale and the season (solar
longitude). From these the finder computes, for every pair of overlapping
images, the quantities the stereo literature uses to judge a pair, tests them
against documented limits, and ranks what passes.

Geometry (Mars as a sphere, which is ample for selecting pairs):

* the *look direction* points from the image centre to the spacecraft: its
  zenith angle is EMISSION_ANGLE, its azimuth the bearing from the centre to
  the sub-spacecraft point; the *sun direction* likewise from INCIDENCE_ANGLE
  and the bearing to the sub-solar point (or, when those columns are absent,
  SUB_SOLAR_AZIMUTH - NORTH_AZIMUTH, both measured from the image's reference
  axis);
* **overlap**: intersection over union of the two footprints, computed in an
  orthographic projection centred between the two images (no trouble at the
  poles or across the 0/360 meridian); the overlap area is reported in km²;
* **convergence angle**: the angle between the two look directions;
* **parallax/height ratio** (Becker et al. 2015): ``|tan e1 â1 - tan e2 â2|``
  with â the horizontal unit look vector: how far a point shifts between the
  images per unit of its height;
* **shadow-tip distance** (Becker et al. 2015): ``|tan i1 ŝ1 - tan i2 ŝ2|``:
  how far apart the tips of the shadows of a unit-height pole are; small means
  similar illumination;
* **solar azimuth difference**, **GSD ratio** (coarser / finer
  SCALED_PIXEL_WIDTH), **solar longitude difference** (season: frost and dust
  differ between seasons).

Default limits (:class:`PairCriteria`, setting ``ctxdask.catalog.pairs``):
parallax/height 0.1-1.0, shadow-tip distance <= 2.58 and GSD ratio <= 2.5
follow Becker, K. J. et al. (2015), *Criteria for automated identification of
stereo image pairs*, LPSC 46, abstract 2703; the 10-60 degree convergence
angle is the Ames Stereo Pipeline's guideline for choosing pairs. The others
are ctxdask's choices, loose on purpose so that the ranking, not the filter,
does the choosing: emission <= 45 degrees, incidence 5-80 degrees (enough light,
not grazing), phase <= 150 degrees, solar azimuth difference <= 30 degrees,
solar longitude difference <= 45 degrees, overlap (IoU) >= 0.3.

Ranking: ``score = IoU x q_stereo x q_light x q_gsd`` with
``q_stereo = exp(-((p/h - p/h_pref) / p/h_pref)²)`` (preferred 0.4),
``q_light = exp(-(shadow-tip distance / its limit)²)`` and ``q_gsd = 1 / GSD
ratio``; each term is 1 for an ideal pair. LEFT is the earlier image (then
the smaller product id), the order the batch keeps.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import shapely

from ctxdask.catalog.errors import CatalogError
from ctxdask.catalog.index import IndexTable, read_index
from ctxdask.pds3 import Label
from ctxdask.settings import PairSearchSettings

__all__ = ["PairCriteria", "PAIR_COLUMNS", "find_pairs", "image_geometry", "pair_metrics", "write_pairs"]

#: mean radius of Mars in km (IAU 2015 equatorial radius, as ISIS uses for CTX)
MARS_RADIUS_KM = 3396.19

CORNERS = ("UPPER_LEFT", "UPPER_RIGHT", "LOWER_RIGHT", "LOWER_LEFT")
#: index columns the finder reads (optional ones are used when present)
PAIR_COLUMNS = [
    "PRODUCT_ID", "IMAGE_TIME", "TARGET_NAME", "ORBIT_NUMBER", "SCALED_PIXEL_WIDTH",
    "EMISSION_ANGLE", "INCIDENCE_ANGLE", "PHASE_ANGLE", "CENTER_LONGITUDE", "CENTER_LATITUDE",
    *[f"{c}_{x}" for c in CORNERS for x in ("LONGITUDE", "LATITUDE")],
    "NORTH_AZIMUTH", "SUB_SOLAR_AZIMUTH", "SUB_SOLAR_LONGITUDE", "SUB_SOLAR_LATITUDE",
    "SUB_SPACECRAFT_LONGITUDE", "SUB_SPACECRAFT_LATITUDE", "SOLAR_LONGITUDE",
]
_REQUIRED = ["PRODUCT_ID", "EMISSION_ANGLE", "INCIDENCE_ANGLE", "CENTER_LONGITUDE", "CENTER_LATITUDE",
             *[f"{c}_{x}" for c in CORNERS for x in ("LONGITUDE", "LATITUDE")]]


class PairCriteria(PairSearchSettings):
    """Limits a stereo pair must meet; angles in degrees. See the module docstring for sources."""


# -- per-image geometry ------------------------------------------------------------------------


def _unit(lat_deg: np.ndarray, lon_east_deg: np.ndarray) -> np.ndarray:
    lat, lon = np.radians(lat_deg), np.radians(lon_east_deg)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def _east_north(lat_deg: np.ndarray, lon_east_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lat, lon = np.radians(lat_deg), np.radians(lon_east_deg)
    east = np.stack([-np.sin(lon), np.cos(lon), np.zeros_like(lon)], axis=-1)
    north = np.stack([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)], axis=-1)
    return east, north


def _horizontal_toward(center: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Unit horizontal vectors at ``center`` pointing toward ``target`` (NaN where undefined)."""
    d = target - np.sum(target * center, axis=-1, keepdims=True) * center
    norm = np.linalg.norm(d, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 1e-12, d / norm, np.nan)


def image_geometry(
    frame: pd.DataFrame, *, longitude_direction: Literal["west", "east"] = "west"
) -> dict[str, np.ndarray]:
    """Vectors and angles of each image, as arrays aligned with ``frame``'s rows.

    Returns a dict with ``center`` (n, 3) unit vectors, ``corners`` (n, 4, 3),
    ``look`` (n, 3) unit vectors toward the spacecraft, ``look_h`` and ``sun_h``
    (n, 3) horizontal unit vectors toward the spacecraft and the sun, and the
    angle columns in degrees.
    """
    sign = -1.0 if longitude_direction == "west" else 1.0
    if longitude_direction not in ("west", "east"):
        raise ValueError(f"longitude_direction must be 'west' or 'east', not {longitude_direction!r}")

    def col(name: str) -> np.ndarray:
        if name not in frame:
            return np.full(len(frame), np.nan)
        return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)

    lat, lon = col("CENTER_LATITUDE"), sign * col("CENTER_LONGITUDE")
    center = _unit(lat, lon)
    east, north = _east_north(lat, lon)
    corners = np.stack([_unit(col(f"{c}_LATITUDE"), sign * col(f"{c}_LONGITUDE")) for c in CORNERS], axis=1)
    emission = np.radians(col("EMISSION_ANGLE"))

    look_h = _horizontal_toward(center, _unit(col("SUB_SPACECRAFT_LATITUDE"), sign * col("SUB_SPACECRAFT_LONGITUDE")))
    # at (near) nadir the azimuth is undefined and irrelevant: tan(e) ~ 0 multiplies it
    look_h = np.where(np.isnan(look_h) & (np.degrees(emission) < 0.5)[:, None], east, look_h)
    look = np.sin(emission)[:, None] * look_h + np.cos(emission)[:, None] * center

    sun_h = _horizontal_toward(center, _unit(col("SUB_SOLAR_LATITUDE"), sign * col("SUB_SOLAR_LONGITUDE")))
    # fallback: azimuths measured clockwise from the image's reference axis, so their
    # difference is the sun's azimuth clockwise from north
    az = np.radians(col("SUB_SOLAR_AZIMUTH") - col("NORTH_AZIMUTH"))
    sun_from_azimuth = np.sin(az)[:, None] * east + np.cos(az)[:, None] * north
    sun_h = np.where(np.isnan(sun_h), sun_from_azimuth, sun_h)

    return {
        "center": center, "corners": corners, "look": look, "look_h": look_h, "sun_h": sun_h,
        "emission": col("EMISSION_ANGLE"), "incidence": col("INCIDENCE_ANGLE"), "phase": col("PHASE_ANGLE"),
        "gsd": col("SCALED_PIXEL_WIDTH"), "ls": col("SOLAR_LONGITUDE"),
    }


# -- pair metrics --------------------------------------------------------------------------------


def pair_metrics(geom: dict[str, np.ndarray], a: np.ndarray, b: np.ndarray) -> pd.DataFrame:
    """Stereo metrics of the pairs ``(a[k], b[k])`` (row positions into ``geom``'s arrays)."""
    ea, eb = np.radians(geom["emission"][a]), np.radians(geom["emission"][b])
    ia, ib = np.radians(geom["incidence"][a]), np.radians(geom["incidence"][b])
    cos_conv = np.clip(np.sum(geom["look"][a] * geom["look"][b], axis=-1), -1.0, 1.0)
    parallax = np.tan(ea)[:, None] * geom["look_h"][a] - np.tan(eb)[:, None] * geom["look_h"][b]
    shadow = np.tan(ia)[:, None] * geom["sun_h"][a] - np.tan(ib)[:, None] * geom["sun_h"][b]
    cos_sun = np.clip(np.sum(geom["sun_h"][a] * geom["sun_h"][b], axis=-1), -1.0, 1.0)
    gsd_a, gsd_b = geom["gsd"][a], geom["gsd"][b]
    dls = np.abs(geom["ls"][a] - geom["ls"][b]) % 360.0
    iou, area = _overlap(geom, a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        gsd_ratio = np.maximum(gsd_a, gsd_b) / np.minimum(gsd_a, gsd_b)
    return pd.DataFrame({
        "iou": iou,
        "overlap_km2": area,
        "convergence": np.degrees(np.arccos(cos_conv)),
        "parallax_height": np.linalg.norm(parallax, axis=-1),
        "shadow_tip_distance": np.linalg.norm(shadow, axis=-1),
        "solar_azimuth_difference": np.degrees(np.arccos(cos_sun)),
        "gsd_ratio": gsd_ratio,
        "solar_longitude_difference": np.minimum(dls, 360.0 - dls),
    })


def _overlap(geom: dict[str, np.ndarray], a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and intersection area (km²) in an orthographic projection centred between each pair."""
    if len(a) == 0:
        return np.zeros(0), np.zeros(0)
    mid = geom["center"][a] + geom["center"][b]
    mid /= np.linalg.norm(mid, axis=-1, keepdims=True)
    lat = np.degrees(np.arcsin(np.clip(mid[:, 2], -1, 1)))
    lon = np.degrees(np.arctan2(mid[:, 1], mid[:, 0]))
    east, north = _east_north(lat, lon)

    def project(corners: np.ndarray) -> np.ndarray:
        x = np.einsum("nkc,nc->nk", corners, east)
        y = np.einsum("nkc,nc->nk", corners, north)
        return np.stack([x, y], axis=-1) * MARS_RADIUS_KM

    # the convex hull of the four corners is the footprint whatever order the corners come in
    # (flipped images list them mirrored)
    pa = shapely.convex_hull(shapely.multipoints(project(geom["corners"][a])))
    pb = shapely.convex_hull(shapely.multipoints(project(geom["corners"][b])))
    inter = shapely.area(shapely.intersection(pa, pb))
    union = shapely.area(pa) + shapely.area(pb) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou, inter


# -- candidates --------------------------------------------------------------------------------


def _lonlat_boxes(lats: np.ndarray, lons_east: np.ndarray) -> list[tuple[int, shapely.Geometry]]:
    """Lon/lat boxes (0-360 east) around each footprint, split at the meridian, whole caps at poles."""
    boxes = []
    for i, (la, lo) in enumerate(zip(lats, lons_east)):
        lo = np.unwrap(np.radians(lo))
        lo = np.degrees(lo)
        lat_min, lat_max = float(np.min(la)), float(np.max(la))
        span = float(np.max(lo) - np.min(lo))
        if span > 90.0 or max(abs(lat_min), abs(lat_max)) > 85.0:
            # around a pole longitude spans say little: take the whole cap
            cap = (lat_min, 90.0) if lat_max > 0 else (-90.0, lat_max)
            boxes.append((i, shapely.box(0.0, cap[0], 360.0, cap[1])))
            continue
        west = float(np.min(lo)) % 360.0
        east = west + span
        boxes.append((i, shapely.box(west, lat_min, min(east, 360.0), lat_max)))
        if east > 360.0:
            boxes.append((i, shapely.box(0.0, lat_min, east - 360.0, lat_max)))
    return boxes


def _candidates(lats: np.ndarray, lons_east: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    owners, geoms = zip(*_lonlat_boxes(lats, lons_east)) if len(lats) else ((), ())
    owners = np.asarray(owners, dtype=np.int64)
    if len(owners) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    tree = shapely.STRtree(list(geoms))
    q, t = tree.query(list(geoms), predicate="intersects")
    a, b = owners[q], owners[t]
    keep = a < b
    pairs = np.unique(np.stack([a[keep], b[keep]], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def _in_bbox(lats: np.ndarray, lons_east: np.ndarray, bbox_east: tuple[float, float, float, float]) -> np.ndarray:
    west, south, east, north = bbox_east
    span = (east - west) % 360.0 or (360.0 if east != west else 0.0)
    query = [shapely.box(west % 360.0, south, min(west % 360.0 + span, 360.0), north)]
    if west % 360.0 + span > 360.0:
        query.append(shapely.box(0.0, south, west % 360.0 + span - 360.0, north))
    inside = np.zeros(len(lats), dtype=bool)
    for i, box in _lonlat_boxes(lats, lons_east):
        if any(box.intersects(q) for q in query):
            inside[i] = True
    return inside


# -- the finder --------------------------------------------------------------------------------


def find_pairs(
    index: pd.DataFrame | str | os.PathLike | Label | IndexTable,
    *,
    criteria: PairCriteria | None = None,
    bbox: Sequence[float] | None = None,
    longitude_direction: Literal["west", "east"] = "west",
    limit: int | None = None,
    storage_options: dict | None = None,
) -> pd.DataFrame:
    """Find and rank stereo pairs among the images of an index.

    Parameters
    ----------
    index : DataFrame, label path/URL, Label or IndexTable
        The CTX cumulative index (or a DataFrame with its columns).
    criteria : PairCriteria, optional
        Limits; default :meth:`PairCriteria.from_config`.
    bbox : (min_lon, min_lat, max_lon, max_lat), optional
        Keep images whose footprint box meets this box; longitudes in the
        index's convention (``longitude_direction``); ``min_lon > max_lon``
        wraps through 0/360.
    longitude_direction : {"west", "east"}
        How the index counts longitude. The CTX index uses positive west
        (CENTER_LONGITUDE 202.08 for a product named ``..._06N202W``).
    limit : int, optional
        Return at most this many pairs (the best).

    Returns
    -------
    pandas.DataFrame
        One row per pair, best first: ``left``, ``right``, ``score``, the
        metrics of :func:`pair_metrics`, and each image's angles, GSD and time.
        ``attrs["funnel"]`` says how many images and pairs each criterion
        rejected (each counted on its own, so one can reject what another
        also does): ``images``, ``unknown_geometry``, ``image_rejects``,
        ``usable_images``, ``overlapping_pairs``, ``same_orbit``,
        ``pair_rejects``, ``pairs``.
    """
    criteria = criteria or PairCriteria.from_config()
    frame = index if isinstance(index, pd.DataFrame) else _read(index, storage_options)
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise CatalogError(None, f"the index lacks column(s) {', '.join(missing)} that the pair finder needs")
    frame = frame.reset_index(drop=True)
    sign = -1.0 if longitude_direction == "west" else 1.0

    geom = image_geometry(frame, longitude_direction=longitude_direction)
    lats = np.stack([pd.to_numeric(frame[f"{c}_LATITUDE"]).to_numpy(float, na_value=np.nan) for c in CORNERS], 1)
    lons = sign * np.stack([pd.to_numeric(frame[f"{c}_LONGITUDE"]).to_numpy(float, na_value=np.nan)
                            for c in CORNERS], 1)

    known = np.isfinite(lats).all(1) & np.isfinite(lons).all(1) & (np.abs(lats) <= 90).all(1)
    known &= np.isfinite(geom["look"]).all(1) & np.isfinite(geom["sun_h"]).all(1)
    if "TARGET_NAME" in frame:
        known &= frame["TARGET_NAME"].fillna("").astype(str).str.upper().eq("MARS").to_numpy()
    # each image criterion, on its own: the funnel tells a user which one left no pair
    with np.errstate(invalid="ignore"):
        image_tests = {
            "max-emission": geom["emission"] <= criteria.max_emission,
            "min-incidence/max-incidence": (geom["incidence"] >= criteria.min_incidence)
            & (geom["incidence"] <= criteria.max_incidence),
            "max-phase": ~(geom["phase"] > criteria.max_phase),  # a missing phase does not exclude
        }
    if bbox is not None:
        w, s, e, n = (float(v) for v in bbox)
        box_east = (w, s, e, n) if sign > 0 else (-e, s, -w, n)
        image_tests["bbox"] = _in_bbox(lats, lons, box_east)
    usable = known & np.logical_and.reduce(list(image_tests.values()))

    rows = np.flatnonzero(usable)
    a, b = _candidates(lats[rows], lons[rows])
    a, b = rows[a], rows[b]
    overlapping = len(a)
    if "ORBIT_NUMBER" in frame:  # one orbit's images are taken minutes apart from one track: no stereo
        orbit = pd.to_numeric(frame["ORBIT_NUMBER"], errors="coerce").to_numpy(float, na_value=np.nan)
        keep = ~(orbit[a] == orbit[b])
        a, b = a[keep], b[keep]

    metrics = pair_metrics(geom, a, b)
    c = criteria
    with np.errstate(invalid="ignore"):
        pair_tests = {
            "min-overlap": metrics["iou"] >= c.min_overlap,
            "min-convergence/max-convergence": metrics["convergence"].between(c.min_convergence,
                                                                               c.max_convergence),
            "min-parallax-height/max-parallax-height": metrics["parallax_height"].between(
                c.min_parallax_height, c.max_parallax_height),
            "max-shadow-tip-distance": metrics["shadow_tip_distance"] <= c.max_shadow_tip_distance,
            "max-solar-azimuth-difference": metrics["solar_azimuth_difference"] <= c.max_solar_azimuth_difference,
            "max-gsd-ratio": ~(metrics["gsd_ratio"] > c.max_gsd_ratio),  # unknown pixel scale does not exclude
            "max-solar-longitude-difference": ~(metrics["solar_longitude_difference"]
                                                > c.max_solar_longitude_difference),
        }
    ok = np.logical_and.reduce([t.to_numpy() for t in pair_tests.values()]) if len(a) else np.zeros(0, bool)
    funnel = {
        "images": len(frame), "unknown_geometry": int((~known).sum()),
        "image_rejects": {k: int((known & ~np.asarray(t)).sum()) for k, t in image_tests.items()},
        "usable_images": len(rows), "overlapping_pairs": overlapping, "same_orbit": overlapping - len(a),
        "pair_rejects": {k: int((~t.to_numpy()).sum()) for k, t in pair_tests.items()}, "pairs": int(ok.sum()),
    }
    a, b, metrics = a[ok], b[ok], metrics[ok].reset_index(drop=True)

    # LEFT is the earlier image (then the smaller id)
    ids = frame["PRODUCT_ID"].astype(str).str.strip().str.upper().to_numpy()
    times = frame["IMAGE_TIME"].astype(str).to_numpy() if "IMAGE_TIME" in frame else ids
    swap = np.array([(times[j], ids[j]) < (times[i], ids[i]) for i, j in zip(a, b)], dtype=bool)
    left, right = np.where(swap, b, a), np.where(swap, a, b)

    height_error = (metrics["parallax_height"] - c.preferred_parallax_height) / c.preferred_parallax_height
    q_stereo = np.exp(-(height_error**2))
    q_light = np.exp(-((metrics["shadow_tip_distance"] / c.max_shadow_tip_distance) ** 2))
    q_gsd = (1.0 / metrics["gsd_ratio"]).fillna(1.0)
    out = pd.DataFrame({"left": ids[left], "right": ids[right]})
    out["score"] = (metrics["iou"] * q_stereo * q_light * q_gsd).to_numpy()
    out = pd.concat([out, metrics], axis=1)
    for side, idx in (("left", left), ("right", right)):
        out[f"incidence_{side}"] = geom["incidence"][idx]
        out[f"emission_{side}"] = geom["emission"][idx]
        out[f"phase_{side}"] = geom["phase"][idx]
        out[f"gsd_{side}"] = geom["gsd"][idx]
        if "IMAGE_TIME" in frame:
            out[f"time_{side}"] = frame["IMAGE_TIME"].to_numpy()[idx]
        # corners as "lon,lat ..." (degrees, east, -180..180) for maps of the pairs (ctxdask serve)
        east = (lons[idx] + 180.0) % 360.0 - 180.0
        out[f"footprint_{side}"] = [" ".join(f"{x:.4f},{y:.4f}" for x, y in zip(xs, ys))
                                    for xs, ys in zip(east, lats[idx])]
    out = out.sort_values(["score", "left", "right"], ascending=[False, True, True], kind="stable")
    out = out.reset_index(drop=True)
    out = out.head(limit) if limit is not None else out
    out.attrs["funnel"] = funnel
    return out


def _read(index: Any, storage_options: dict | None) -> pd.DataFrame:
    table = index
    if not isinstance(table, IndexTable):
        from ctxdask.catalog.index import open_index

        table = open_index(index, storage_options=storage_options)
    columns = [c for c in PAIR_COLUMNS if c in table.names]
    return read_index(table, columns=columns)


def write_pairs(pairs: pd.DataFrame, path: str | os.PathLike, *,
                scores_path: str | os.PathLike | None = None) -> tuple[pathlib.Path, pathlib.Path]:
    """Write the ranked pair list ("LEFT RIGHT" per line) and the scores as CSV beside it.

    Both files are written atomically (temporary file, then rename). The CSV
    defaults to the pair list's path with the suffix ``.csv``.

    Returns
    -------
    (pair list path, scores path)
    """
    path = pathlib.Path(path)
    scores = pathlib.Path(scores_path) if scores_path is not None else path.with_suffix(".csv")
    if scores == path:
        scores = path.with_name(path.name + ".csv")
    text = "".join(f"{left} {right}\n" for left, right in zip(pairs["left"], pairs["right"]))
    _atomic_write(path, text)
    _atomic_write(scores, pairs.to_csv(index=False, float_format="%.6g"))
    return path, scores


def _atomic_write(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
