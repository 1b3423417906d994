"""Coordinates and coordinate systems in words, for the report and the live pages.

- :func:`describe_crs`: a DEM's CRS as a person reads it (body, projection,
  centre, pixel size) instead of its WKT or the ``unknown`` name GDAL gives
  the projections ASP writes.
- :func:`format_lat`, :func:`format_lon`: ``79°S``, ``172°W`` (never ``-79°N``);
  longitudes east-positive in -180..180, written E/W like CTX product ids.
- :func:`wrap_lon`: the one longitude convention of the map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["BODIES", "describe_crs", "format_lat", "format_lon", "format_lonlat", "wrap_lon"]

#: mean radius ranges (metres) -> body, for CRSs whose names say nothing (ASP's ``unknown``)
BODIES: tuple[tuple[float, float, str], ...] = (
    (3_370_000.0, 3_400_000.0, "Mars"),
    (1_737_000.0, 1_738_200.0, "the Moon"),
    (6_356_000.0, 6_378_200.0, "Earth"),
)

#: pyproj method names -> plain words
_METHODS = {
    "Equidistant Cylindrical (Spherical)": "equirectangular (simple cylindrical)",
    "Equidistant Cylindrical": "equirectangular (simple cylindrical)",
    "Polar Stereographic (variant A)": "polar stereographic",
    "Polar Stereographic (variant B)": "polar stereographic",
    "Stereographic": "stereographic",
    "Oblique Stereographic": "oblique stereographic",
    "Transverse Mercator": "transverse Mercator",
    "Mercator (variant A)": "Mercator",
    "Mercator (variant B)": "Mercator",
    "Sinusoidal": "sinusoidal",
    "Orthographic": "orthographic",
    "Lambert Azimuthal Equal Area (Spherical)": "Lambert azimuthal equal-area",
    "Lambert Azimuthal Equal Area": "Lambert azimuthal equal-area",
}


def wrap_lon(lon: float) -> float:
    """``lon`` in -180..180 east (the map's convention; STAC items and pair finders may use 0..360)."""
    return (float(lon) + 180.0) % 360.0 - 180.0


def _number(value: float, digits: int) -> str:
    text = f"{abs(value):.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_lat(lat: float, digits: int = 2) -> str:
    """``79°S``, ``2.5°N``, ``0°``: a latitude with its hemisphere, never a signed ``°N``."""
    if round(lat, digits) == 0:
        return "0°"
    return f"{_number(lat, digits)}°{'N' if lat > 0 else 'S'}"


def format_lon(lon: float, digits: int = 2) -> str:
    """``172°W``, ``16.9°E``, ``0°``, ``180°``: east-positive longitude written E/W."""
    lon = wrap_lon(lon)
    if round(lon, digits) == 0:
        return "0°"
    if round(abs(lon), digits) == 180:
        return "180°"
    return f"{_number(lon, digits)}°{'E' if lon > 0 else 'W'}"


def format_lonlat(lon: float, lat: float, digits: int = 2) -> str:
    """``79°S 172°W``: latitude first, as a place is read."""
    return f"{format_lat(lat, digits)} {format_lon(lon, digits)}"


def _body(crs: Any) -> str:
    """The body a CRS is on: from its datum or ellipsoid name, else by its radius."""
    names = " ".join(str(n) for n in (crs.datum.name if crs.datum else "", crs.ellipsoid.name if crs.ellipsoid else ""))
    for body in ("Mars", "Moon", "Mercury", "Venus", "Phobos", "Deimos"):
        if body.lower() in names.lower():
            return "the Moon" if body == "Moon" else body
    radius = crs.ellipsoid.semi_major_metre if crs.ellipsoid else None
    for low, high, body in BODIES:
        if radius and low <= radius <= high:
            return body
    return "an unnamed body"


def _shape(crs: Any) -> str:
    ellipsoid = crs.ellipsoid
    if ellipsoid is None:
        return ""
    a, b = ellipsoid.semi_major_metre, ellipsoid.semi_minor_metre
    if not ellipsoid.inverse_flattening or math.isclose(a, b):
        return f"sphere of radius {a:,.0f} m"
    return f"ellipsoid {a:,.0f} × {b:,.0f} m"


def _param(params: dict[str, float], *names: str) -> float | None:
    for name in names:
        if name in params:
            return params[name]
    return None


def _pixel(resolution: Sequence[float] | None, unit: str) -> str:
    if not resolution:
        return ""
    x, y = (abs(float(v)) for v in resolution[:2])
    size = f"{x:g}" if math.isclose(x, y, rel_tol=1e-9) else f"{x:g} × {y:g}"
    return f"{size}{unit} pixels" if unit == "°" else f"{size} {unit} pixels"


def describe_crs(wkt: str | None, resolution: Sequence[float] | None = None) -> str | None:
    """A CRS in words: body, projection, centre and pixel size.

    Parameters
    ----------
    wkt : str
        The CRS as WKT (or anything pyproj reads).
    resolution : (float, float), optional
        Pixel size in the CRS's units.

    Returns
    -------
    str or None
        E.g. ``"Mars (sphere of radius 3,396,190 m), polar stereographic centred on 90°S 0°, 20 m pixels"``;
        None when ``wkt`` is empty or not a CRS.
    """
    if not wkt:
        return None
    try:
        from pyproj import CRS

        crs = CRS.from_user_input(wkt)
    except Exception:  # noqa: BLE001 - pyproj raises its own errors for text it cannot read
        return None
    shape = _shape(crs)
    where = f"{_body(crs)}{f' ({shape})' if shape else ''}"
    if crs.is_geographic:
        return f"{where}, longitude/latitude in degrees{', ' + _pixel(resolution, '°') if resolution else ''}"
    op = crs.coordinate_operation
    method = op.method_name if op is not None else "unknown projection"
    params = {p.name: p.value for p in op.params} if op is not None else {}
    words = _METHODS.get(method, method[:1].lower() + method[1:])
    lat = _param(params, "Latitude of natural origin", "Latitude of projection centre", "Latitude of false origin")
    lon = _param(params, "Longitude of natural origin", "Longitude of origin", "Longitude of projection centre",
                 "Longitude of false origin")
    parallel = _param(params, "Latitude of 1st standard parallel", "Latitude of standard parallel")
    if "polar" in words and lat is None and parallel is not None:
        lat = math.copysign(90.0, parallel)  # variant B names only its standard parallel: the pole on its side
    if "cylindrical" in words or "Mercator" in words or words == "sinusoidal":
        centre = f"central meridian {format_lon(lon)}" if lon is not None else ""
        if parallel:
            centre += f", true scale at {format_lat(parallel)}"
    elif lat is not None and lon is not None:
        centre = f"centred on {format_lonlat(lon, lat)}"
        if parallel is not None and "polar" in words and abs(parallel) != 90:  # true scale at the pole: the default
            centre += f", true scale at {format_lat(parallel)}"
    else:
        centre = ""
    unit = "m"
    try:
        unit = {"metre": "m", "kilometre": "km"}.get(crs.axis_info[0].unit_name, crs.axis_info[0].unit_name)
    except (IndexError, AttributeError):
        pass
    parts = [f"{where}, {words}", centre, _pixel(resolution, unit)]
    return ", ".join(p for p in parts if p)
