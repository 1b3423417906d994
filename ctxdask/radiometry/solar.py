"""Sun–Mars distance without SPICE kernels, and the ISIS ``ctxcal`` I/F constants.

ISIS ``ctxcal`` converts DN/ms to I/F with the Sun–Mars distance ``d`` at the
image START_TIME, which it takes from SPICE: the "SunPosition" table that
``spiceinit`` writes (or, failing that, ``spkezr("sun", et, ..., "LT+S",
"mars")``). Both are the position of the Sun's centre seen from Mars's centre
with light-time and stellar-aberration corrections.

This module reproduces that number without kernels:

* UTC -> TDB with ERFA (the leap-second table built into pyerfa, TT = TAI +
  32.184 s, TDB - TT from the Fairhead & Bretagnon series), which matches the
  SPICE ET a kernel-based program gets from the same UTC to well under a
  millisecond;
* positions from the JPL planetary ephemeris DE421 (the ``de421.bsp`` file
  that the PyPI package ``skyfield-data`` ships), read with ``jplephem``. The
  Sun is taken at ``et - lt`` (converged light time) and Mars at ``et``.
  Stellar aberration turns the vector but keeps its length, so it does not
  enter the distance.

Against the SunPosition table that spiceinit wrote (DE430) into the ISIS test
cube ``ctxTestImage.cub`` the distance agrees to about 1e-12 relative.
``ephemeris="plan94"`` uses ERFA's analytic planetary theory instead (no data
file; about 1.3e-6 relative on the same cube), well inside the 1e-4 that
ISIS-compatible I/F needs.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import functools
import importlib.resources
import math
import re
from dataclasses import dataclass
from typing import Final, Literal, Union

import numpy as np

__all__ = [
    "AU_KM",
    "CTXCAL_W0",
    "CTXCAL_REFERENCE_DISTANCE_KM",
    "SunDistance",
    "utc_to_et",
    "sun_mars_distance",
    "sun_mars_distance_at_et",
    "ctxcal_w1",
    "iof_factor",
]

#: The astronomical unit in km (IAU 2012 resolution B2).
AU_KM: Final[float] = 149_597_870.700
#: Speed of light in km/s.
_C_KM_S: Final[float] = 299_792.458
#: Seconds per day and the J2000.0 epoch (JD, TDB).
_DAY_S: Final[float] = 86_400.0
_J2000: Final[float] = 2_451_545.0

#: ``ctxcal``'s solar constant term ``w0`` (DN/ms per unit I/F at the reference distance).
CTXCAL_W0: Final[float] = 3660.5
#: ``ctxcal``'s reference Sun distance for ``w0``, in km.
CTXCAL_REFERENCE_DISTANCE_KM: Final[float] = 2.07e8

Ephemeris = Literal["de421", "plan94"]
TimeLike = Union[str, _dt.datetime, np.datetime64]

# NAIF ids of the DE421 segments used: SSB (0) -> Mars barycentre (4) -> Mars (499); SSB -> Sun (10)
_SSB, _MARS_BARY, _MARS, _SUN = 0, 4, 499, 10


@dataclass(frozen=True)
class SunDistance:
    """The Sun–Mars distance at one instant and how it was obtained.

    Attributes
    ----------
    km : float
        Distance from the centre of Mars to the apparent (light-time corrected)
        centre of the Sun, in km.
    light_time_s : float
        One-way light time used, in s (0 for ``plan94``, which is heliocentric).
    et : float
        The instant as TDB seconds past J2000 (SPICE "ET").
    ephemeris : str
        The ephemeris used, e.g. ``"JPL DE421"``.
    """

    km: float
    light_time_s: float
    et: float
    ephemeris: str

    @property
    def au(self) -> float:
        """The distance in astronomical units."""
        return self.km / AU_KM


_ISO = re.compile(
    r"^\s*(?P<y>\d{4})-(?:(?P<m>\d{1,2})-(?P<d>\d{1,2})|(?P<doy>\d{3}))"
    r"(?:[T ](?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}(?:\.\d*)?))?)?\s*(?:Z|[+-]00:?00)?\s*$"
)


def _utc_fields(utc: TimeLike) -> tuple[int, int, int, int, int, float]:
    """Split a UTC time into calendar fields, keeping a leap second (``:60``) intact."""
    if isinstance(utc, np.datetime64):
        utc = np.datetime_as_string(utc.astype("datetime64[ns]"), unit="ns")
    if isinstance(utc, _dt.datetime):
        if utc.tzinfo is not None:
            utc = utc.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        sec = utc.second + utc.microsecond * 1e-6
        return utc.year, utc.month, utc.day, utc.hour, utc.minute, sec
    if not isinstance(utc, str):
        raise TypeError(f"UTC time must be a str, datetime or numpy.datetime64, got {type(utc)}")
    m = _ISO.match(utc)
    if m is None:
        raise ValueError(
            f"cannot read UTC time {utc!r}: expected YYYY-MM-DDThh:mm:ss[.fff] or "
            "YYYY-DDDThh:mm:ss[.fff] (PDS form)"
        )
    year = int(m["y"])
    if m["doy"] is not None:
        day = _dt.date(year, 1, 1) + _dt.timedelta(days=int(m["doy"]) - 1)
        if day.year != year:
            raise ValueError(f"day of year out of range in {utc!r}")
        month, dom = day.month, day.day
    else:
        month, dom = int(m["m"]), int(m["d"])
    return year, month, dom, int(m["H"] or 0), int(m["M"] or 0), float(m["S"] or 0.0)


def utc_to_et(utc: TimeLike) -> float:
    """Convert a UTC time to SPICE ephemeris time (TDB seconds past J2000).

    Parameters
    ----------
    utc : str, datetime.datetime or numpy.datetime64
        A UTC instant: PDS ``START_TIME`` form (``2009-06-01T00:38:16.057``,
        optionally with ``Z`` or ``+00:00``, or the day-of-year form ``2009-152T00:38:16.057``),
        a naive (UTC) or aware datetime, or a datetime64 (taken as UTC).

    Returns
    -------
    float
        TDB seconds past J2000.0 (2000-01-01T12:00:00 TDB).

    Notes
    -----
    Uses pyerfa's built-in leap-second table. ERFA flags years some time after
    the table's last entry as "dubious" because a leap second could have been
    announced since; that cannot move the result by more than a second or so,
    which changes the Sun–Mars distance by about 1e-8 relative, so the flag is
    ignored. TDB - TT uses the full Fairhead & Bretagnon series at the
    geocentre (SPICE uses a two-term approximation; they differ by tens of
    microseconds).
    """
    import erfa.ufunc as eu

    y, mo, d, h, mi, s = _utc_fields(utc)
    # two-part Julian dates throughout, so nothing is lost to float64 rounding
    u1, u2, st = eu.dtf2d(b"UTC", y, mo, d, h, mi, s)
    if st < 0 or st & 2:
        raise ValueError(f"invalid UTC time {utc!r} (ERFA dtf2d status {int(st)})")
    a1, a2, st = eu.utctai(u1, u2)
    if st < 0:
        raise ValueError(f"cannot convert UTC {utc!r} to TAI (ERFA utctai status {int(st)})")
    t1, t2, _ = eu.taitt(a1, a2)
    # TDB-TT at the geocentre; the 1-2 ms periodic term varies by < 2 us across Earth's radius
    ut_fraction = (u1 - 0.5) % 1.0 + u2
    tdb_minus_tt = eu.dtdb(t1, t2, ut_fraction, 0.0, 0.0, 0.0)
    return float(((t1 - _J2000) + t2) * _DAY_S + tdb_minus_tt)


@functools.lru_cache(maxsize=1)
def _de421():
    """The DE421 kernel from the ``skyfield-data`` package, opened once per process."""
    try:
        from jplephem.spk import SPK
    except ImportError as e:  # pragma: no cover - both are project dependencies
        raise ImportError(
            "the DE421 ephemeris needs the 'jplephem' package; install it or pass "
            "ephemeris='plan94'"
        ) from e
    try:
        path = importlib.resources.files("skyfield_data") / "data" / "de421.bsp"
    except ModuleNotFoundError as e:  # pragma: no cover
        raise ImportError(
            "the DE421 ephemeris ships in the 'skyfield-data' package; install it or "
            "pass ephemeris='plan94'"
        ) from e
    # read the file directly: skyfield_data.get_skyfield_data_path() would check the
    # expiry of its unrelated Earth-orientation file and may warn or raise
    kernel = SPK.open(str(path))
    atexit.register(kernel.close)  # the kernel is memory-mapped for the life of the process
    return kernel, (kernel[_SSB, _MARS_BARY], kernel[_MARS_BARY, _MARS], kernel[_SSB, _SUN])


def _check_span(segment, et: float) -> None:
    jd = _J2000 + et / _DAY_S
    if not segment.start_jd <= jd <= segment.end_jd:
        raise ValueError(
            f"ET {et:.3f} is outside DE421 ({segment.start_jd} .. {segment.end_jd} JD); "
            "use ephemeris='plan94'"
        )


def _de421_distance(et: float, light_time: bool) -> SunDistance:
    _, (mars_bary, mars, sun) = _de421()
    _check_span(sun, et)
    day = et / _DAY_S  # jplephem takes (jd1, jd2) TDB; split keeps precision
    r_mars = mars_bary.compute(_J2000, day) + mars.compute(_J2000, day)
    vec = sun.compute(_J2000, day) - r_mars
    lt = 0.0
    if light_time:
        # converged Newtonian light time: the Sun where it was when the light left it
        for _ in range(10):
            new_lt = math.sqrt(float(vec @ vec)) / _C_KM_S
            if abs(new_lt - lt) < 1e-9:
                break
            lt = new_lt
            vec = sun.compute(_J2000, day - lt / _DAY_S) - r_mars
    km = math.sqrt(float(vec @ vec))
    return SunDistance(km=km, light_time_s=lt, et=et, ephemeris="JPL DE421")


def _plan94_distance(et: float) -> SunDistance:
    import erfa.ufunc as eu

    pv, status = eu.plan94(_J2000, et / _DAY_S, 4)
    if status < 0:
        raise ValueError(f"ERFA plan94 failed for ET {et} (status {int(status)})")
    km = float(np.sqrt(np.sum(pv["p"] ** 2))) * AU_KM
    return SunDistance(km=km, light_time_s=0.0, et=et, ephemeris="ERFA plan94")


def sun_mars_distance_at_et(
    et: float, *, ephemeris: Ephemeris = "de421", light_time: bool = True
) -> SunDistance:
    """Sun–Mars distance at an ephemeris time.

    Parameters
    ----------
    et : float
        TDB seconds past J2000 (SPICE ET).
    ephemeris : {"de421", "plan94"}, default "de421"
        ``"de421"``: JPL DE421 (1899-07-29 .. 2053-10-09) from the
        ``skyfield-data`` package, read with ``jplephem``. ``"plan94"``: ERFA's
        analytic theory, heliocentric, no data file, ~1e-6 relative.
    light_time : bool, default True
        Apply the light-time correction ("LT", as SPICE/ISIS do). Only for
        ``de421``; the effect on the distance is ~5e-9 relative.

    Returns
    -------
    SunDistance
    """
    if ephemeris == "de421":
        return _de421_distance(float(et), light_time)
    if ephemeris == "plan94":
        return _plan94_distance(float(et))
    raise ValueError(f"unknown ephemeris {ephemeris!r}; use 'de421' or 'plan94'")


def sun_mars_distance(
    utc: TimeLike, *, ephemeris: Ephemeris = "de421", light_time: bool = True
) -> SunDistance:
    """Sun–Mars distance at a UTC time, as ISIS ``ctxcal`` gets it from SPICE.

    Parameters
    ----------
    utc : str, datetime.datetime or numpy.datetime64
        The instant, e.g. a CTX label ``START_TIME`` (see :func:`utc_to_et`).
    ephemeris : {"de421", "plan94"}, default "de421"
        See :func:`sun_mars_distance_at_et`.
    light_time : bool, default True
        See :func:`sun_mars_distance_at_et`.

    Returns
    -------
    SunDistance
        ``.km`` is the distance; ``.au``, ``.et``, ``.light_time_s`` and
        ``.ephemeris`` are there to record in attrs.

    Examples
    --------
    >>> d = sun_mars_distance("2006-11-19T06:16:39.003")
    >>> round(d.km)
    234674856
    """
    return sun_mars_distance_at_et(utc_to_et(utc), ephemeris=ephemeris, light_time=light_time)


def ctxcal_w1(distance_km: float) -> float:
    """``ctxcal``'s ``w1``: the DN/ms that unit I/F gives at Sun distance ``distance_km``.

    ``w1 = 3660.5 * (2.07e8 km)**2 / d**2``.

    Parameters
    ----------
    distance_km : float
        Sun–Mars distance in km.

    Returns
    -------
    float
    """
    if not distance_km > 0:
        raise ValueError(f"Sun distance must be positive, got {distance_km!r} km")
    return CTXCAL_W0 * (CTXCAL_REFERENCE_DISTANCE_KM / distance_km) ** 2


def iof_factor(exposure_ms: float, distance_km: float) -> float:
    """``ctxcal``'s I/F factor ``k = 1 / (exposure * w1)``.

    I/F is then ``(DN - dark) / flat * k``.

    Parameters
    ----------
    exposure_ms : float
        ``LINE_EXPOSURE_DURATION`` in milliseconds (no summing factor, as ctxcal).
    distance_km : float
        Sun–Mars distance in km.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the exposure is not positive (ctxcal refuses ``exposure * w1 == 0``).
    """
    if not exposure_ms > 0:
        raise ValueError(f"exposure must be positive, got {exposure_ms!r} ms")
    return 1.0 / (exposure_ms * ctxcal_w1(distance_km))
