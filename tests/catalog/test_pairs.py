"""The stereo-pair finder on footprints and viewing geometry with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from cumindex import default_row, write_cumindex

from ctxdask.catalog import PairCriteria, find_pairs, write_pairs
from ctxdask.catalog.pairs import MARS_RADIUS_KM, image_geometry, pair_metrics

R = MARS_RADIUS_KM


def _offset(lat, lon_w, east_km, north_km):
    """Point ``east_km``/``north_km`` from (lat, west lon), exact on the sphere (destination formula)."""
    d = math.hypot(east_km, north_km) / R
    if d == 0:
        return lat, lon_w
    bearing = math.atan2(east_km, north_km)
    phi1, lam1 = math.radians(lat), -math.radians(lon_w)
    phi2 = math.asin(math.sin(phi1) * math.cos(d) + math.cos(phi1) * math.sin(d) * math.cos(bearing))
    lam2 = lam1 + math.atan2(math.sin(bearing) * math.sin(d) * math.cos(phi1),
                             math.cos(d) - math.sin(phi1) * math.sin(phi2))
    return math.degrees(phi2), (-math.degrees(lam2)) % 360.0


def image(pid, lat, lon_w, *, shift_east_km=0.0, shift_north_km=0.0, width_km=30.0, height_km=60.0, emission=0.0, look_az=90.0,
          incidence=50.0, sun_az=270.0, altitude=300.0, gsd=6.0, ls=100.0, time="2010-01-01T00:00:00"):
    """An index row: a footprint rectangle, the spacecraft at ``emission``/``look_az``, the sun likewise."""
    clat, clon = _offset(lat, lon_w, shift_east_km, shift_north_km)
    row = {"PRODUCT_ID": pid, "IMAGE_TIME": time, "TARGET_NAME": "MARS", "ORBIT_NUMBER": int(pid[4:10]),
           "SCALED_PIXEL_WIDTH": gsd, "EMISSION_ANGLE": emission, "INCIDENCE_ANGLE": incidence,
           "PHASE_ANGLE": 60.0, "CENTER_LATITUDE": clat, "CENTER_LONGITUDE": clon, "SOLAR_LONGITUDE": ls}
    for name, (e, n) in {"UPPER_LEFT": (-1, 1), "UPPER_RIGHT": (1, 1), "LOWER_RIGHT": (1, -1),
                         "LOWER_LEFT": (-1, -1)}.items():
        row[f"{name}_LATITUDE"], row[f"{name}_LONGITUDE"] = _offset(clat, clon, e * width_km / 2, n * height_km / 2)
    # sub-spacecraft point: central angle from the emission angle and the altitude
    theta = math.radians(emission) - math.asin(R * math.sin(math.radians(emission)) / (R + altitude))
    a = math.radians(look_az)
    row["SUB_SPACECRAFT_LATITUDE"], row["SUB_SPACECRAFT_LONGITUDE"] = _offset(
        clat, clon, theta * R * math.sin(a), theta * R * math.cos(a))
    s = math.radians(sun_az)
    dist = math.radians(incidence) * R  # the sub-solar point is `incidence` away on a sphere
    row["SUB_SOLAR_LATITUDE"], row["SUB_SOLAR_LONGITUDE"] = _offset(clat, clon, dist * math.sin(s),
                                                                    dist * math.cos(s))
    return row


def metrics_of(*rows):
    frame = pd.DataFrame(rows)
    geom = image_geometry(frame)
    return pair_metrics(geom, np.array([0]), np.array([1])).iloc[0]


@pytest.mark.parametrize("lat, lon", [(10.0, 150.0), (-45.0, 0.05), (78.0, 300.0), (0.0, 359.99)])
def test_overlap_iou_of_shifted_rectangles(lat, lon):
    # same 30 x 60 km rectangle shifted east by 10 km: intersection 20x60, union 40x60 -> IoU 1/2
    a = image("B01_000001_1000_XN_10N150W", lat, lon)
    b = image("B01_000002_1000_XN_10N150W", lat, lon, shift_east_km=10.0)
    m = metrics_of(a, b)
    assert m["iou"] == pytest.approx(0.5, abs=2e-3)
    assert m["overlap_km2"] == pytest.approx(20 * 60, rel=3e-3)
    c = image("B01_000003_1000_XN_10N150W", lat, lon, shift_east_km=40.0)
    assert metrics_of(a, c)["iou"] == 0.0


def test_overlap_near_the_pole_and_across_the_meridian():
    # 40 x 40 km boxes at 87N straddling 0/360, the second 20 km further north: IoU 1/3
    a = image("B01_000001_1000_XN_10N150W", 87.0, 359.9, width_km=40, height_km=40)
    b = image("B01_000002_1000_XN_10N150W", 87.0, 359.9, shift_north_km=20.0, width_km=40, height_km=40)
    assert {a["UPPER_LEFT_LONGITUDE"] > 180, a["UPPER_RIGHT_LONGITUDE"] > 180} == {True, False}
    assert metrics_of(a, b)["iou"] == pytest.approx(1 / 3, abs=2e-3)
    # a footprint around the pole itself still overlaps a copy of itself fully, and is found
    c = image("B01_000003_1000_XN_10N150W", 89.9, 10.0, width_km=40, height_km=40, emission=2.0)
    d = image("B02_000004_1000_XN_10N150W", 89.9, 10.0, width_km=40, height_km=40, emission=20.0, look_az=270)
    assert metrics_of(c, d)["iou"] == pytest.approx(1.0, abs=1e-6)
    assert len(find_pairs(pd.DataFrame([c, d]), criteria=PairCriteria())) == 1


@pytest.mark.parametrize("e1, az1, e2, az2, convergence, ph", [
    (10.0, 90.0, 15.0, 270.0, 25.0, math.tan(math.radians(10)) + math.tan(math.radians(15))),  # opposite sides
    (5.0, 90.0, 25.0, 90.0, 20.0, math.tan(math.radians(25)) - math.tan(math.radians(5))),    # same side
    (0.0, 0.0, 20.0, 180.0, 20.0, math.tan(math.radians(20))),                                 # one at nadir
    (20.0, 0.0, 20.0, 90.0, None, math.tan(math.radians(20)) * math.sqrt(2)),                  # crossing
])
def test_convergence_and_parallax_height(e1, az1, e2, az2, convergence, ph):
    a = image("B01_000001_1000_XN_10N150W", -20.0, 80.0, emission=e1, look_az=az1)
    b = image("B02_000002_1000_XN_10N150W", -20.0, 80.0, emission=e2, look_az=az2)
    m = metrics_of(a, b)
    if convergence is None:  # perpendicular azimuths: cos c = cos e1 cos e2
        convergence = math.degrees(math.acos(math.cos(math.radians(e1)) * math.cos(math.radians(e2))))
    assert m["convergence"] == pytest.approx(convergence, abs=0.05)
    assert m["parallax_height"] == pytest.approx(ph, abs=1e-3)


def test_illumination_season_and_resolution():
    a = image("B01_000001_1000_XN_10N150W", 30.0, 200.0, incidence=40.0, sun_az=250.0, gsd=5.0, ls=350.0)
    b = image("B02_000002_1000_XN_10N150W", 30.0, 200.0, incidence=60.0, sun_az=270.0, gsd=7.5, ls=20.0)
    m = metrics_of(a, b)
    assert m["solar_azimuth_difference"] == pytest.approx(20.0, abs=0.05)
    t1, t2 = math.tan(math.radians(40)), math.tan(math.radians(60))
    shadow = math.sqrt(t1**2 + t2**2 - 2 * t1 * t2 * math.cos(math.radians(20)))
    assert m["shadow_tip_distance"] == pytest.approx(shadow, abs=2e-3)
    assert m["gsd_ratio"] == pytest.approx(1.5)
    assert m["solar_longitude_difference"] == pytest.approx(30.0)  # across Ls 0


def test_sun_from_azimuth_columns_when_subsolar_point_is_absent():
    a = image("B01_000001_1000_XN_10N150W", 30.0, 200.0, sun_az=250.0)
    b = image("B02_000002_1000_XN_10N150W", 30.0, 200.0, sun_az=270.0)
    for row, az in ((a, 250.0), (b, 270.0)):
        del row["SUB_SOLAR_LATITUDE"], row["SUB_SOLAR_LONGITUDE"]
        row["NORTH_AZIMUTH"], row["SUB_SOLAR_AZIMUTH"] = 280.0, (280.0 + az) % 360.0
    assert metrics_of(a, b)["solar_azimuth_difference"] == pytest.approx(20.0, abs=0.05)


A, B, C = "B01_010001_1000_XN_10N150W", "B02_010500_1000_XN_10N150W", "B03_011000_1000_XN_10N150W"
D, E, G = "B04_011500_1000_XN_10N150W", "B05_012000_1000_XN_10N150W", "B01_010001_1001_XN_10N150W"


def _scene():
    lat, lon = -5.0, 140.0
    return [
        image(A, lat, lon, emission=2.0, look_az=90, time="2010-01-01T00:00:00"),
        # the best partner of A: overlap 0.8, convergence 20 deg
        image(B, lat, lon, shift_east_km=3.3, emission=18.0, look_az=270, time="2010-03-01T00:00:00"),
        # a weaker partner of A (overlap 0.6, convergence 12), too little convergence with B (8)
        image(C, lat, lon, shift_east_km=7.5, emission=10.0, look_az=270, time="2009-06-01T00:00:00"),
        # good views, but lit from another direction at a lower sun: fails with everyone
        image(D, lat, lon, shift_east_km=1.0, emission=25.0, look_az=270, incidence=75.0, sun_az=180.0,
              time="2010-05-01T00:00:00"),
        # good views and light, but another season: fails with everyone
        image(E, lat, lon, emission=21.0, look_az=270, ls=250.0, time="2010-07-01T00:00:00"),
        # elsewhere: overlaps nobody
        image("B06_012500_1000_XN_10N150W", lat + 5, lon, emission=20.0, look_az=270),
        # a fine partner for A, but from the same orbit: never a pair; too close in angle to the others
        image(G, lat, lon, emission=17.0, look_az=270, time="2010-01-01T00:10:00"),
    ]


def test_find_pairs_filters_and_ranks():
    frame = pd.DataFrame(_scene())
    pairs = find_pairs(frame, criteria=PairCriteria())
    # ranked, and LEFT is the earlier image: C (2009) before A (2010)
    assert list(zip(pairs["left"], pairs["right"])) == [(A, B), (C, A)]
    assert pairs["score"].is_monotonic_decreasing
    best = pairs.iloc[0]
    assert best["iou"] == pytest.approx(0.8, abs=0.01) and best["convergence"] == pytest.approx(20.0, abs=0.1)
    # 12 deg less the 0.13 deg the surface normal turns over the 7.5 km between the two centres
    assert pairs.iloc[1]["convergence"] == pytest.approx(12.0 - math.degrees(7.5 / R), abs=0.01)
    for name in ("emission_left", "incidence_right", "gsd_left", "time_right", "parallax_height"):
        assert name in pairs.columns
    # each criterion changes the answer as it should
    assert len(find_pairs(frame, criteria=PairCriteria(min_overlap=0.7))) == 1
    assert len(find_pairs(frame, criteria=PairCriteria(min_convergence=15.0))) == 1
    seasons = find_pairs(frame, criteria=PairCriteria(max_solar_longitude_difference=180.0))
    assert set(zip(seasons["left"], seasons["right"])) == {(A, B), (C, A), (A, E), (C, E)}
    light = find_pairs(frame, criteria=PairCriteria(max_shadow_tip_distance=99, max_solar_azimuth_difference=180))
    assert {(A, D), (C, D)} <= set(zip(light["left"], light["right"]))
    assert len(find_pairs(frame, criteria=PairCriteria(), limit=1)) == 1


def test_bbox_in_west_longitudes():
    frame = pd.DataFrame(_scene())
    assert len(find_pairs(frame, bbox=(139.0, -6.0, 141.0, -4.0), criteria=PairCriteria())) == 2
    assert len(find_pairs(frame, bbox=(100.0, -6.0, 120.0, -4.0), criteria=PairCriteria())) == 0
    # a box through 0/360 (min_lon > max_lon)
    shifted = pd.DataFrame([image(A, 0.0, 0.05, emission=2.0, look_az=90),
                            image(B, 0.0, 0.05, shift_east_km=3.3, emission=18.0, look_az=270)])
    assert len(find_pairs(shifted, bbox=(359.0, -1.0, 1.0, 1.0), criteria=PairCriteria())) == 1
    assert len(find_pairs(shifted, bbox=(1.0, -1.0, 359.0, 1.0), criteria=PairCriteria())) == 0


def test_from_a_written_index_and_pair_list_format(tmp_path):
    rows = [default_row(r["PRODUCT_ID"], **{k: round(v, 2) if isinstance(v, float) else v
                                            for k, v in r.items()}) for r in _scene()]
    label = write_cumindex(tmp_path / "index", rows)
    pairs = find_pairs(label, criteria=PairCriteria())
    assert list(zip(pairs["left"], pairs["right"])) == [(A, B), (C, A)]
    listing, scores = write_pairs(pairs, tmp_path / "out" / "pairs.txt")
    assert listing.read_text() == f"{A} {B}\n{C} {A}\n"
    table = pd.read_csv(scores)
    assert list(table["left"]) == [A, C] and table["score"].iloc[0] == pytest.approx(pairs["score"].iloc[0], rel=1e-5)
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left behind


def test_criteria_from_config():
    import dask.config

    with dask.config.set({"ctxdask.catalog.pairs.min-overlap": 0.55}):
        criteria = PairCriteria.from_config(max_gsd_ratio=3)
    assert criteria.min_overlap == 0.55 and criteria.max_gsd_ratio == 3.0
    assert PairCriteria.from_config().min_convergence == 10.0
