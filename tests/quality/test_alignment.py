"""MOLA CSVs as pc_align reads them, and what pc_align's log says."""

from __future__ import annotations

import numpy as np
import pytest

from ctxdask.quality import QualityError
from ctxdask.quality.alignment import mola_for_pair, parse_pc_align_log, read_mola_csv, suggest_max_displacement

# the lines pc_align prints (src/asp/Tools/pc_align.cc: calc_stats, translation, warning, rotation)
LOG = """\
Number of errors: 1523
Input: error percentile of smallest errors (meters): 16%: 2.5, 50%: 11.25, 84%: 40.5
Input: mean of smallest errors (meters): 25%: 1.9, 50%: 4.4, 75%: 9.9, 100%: 21.2
Input stats (meters): Mean: 21.2, StdDev: 30.1, RMSE: 36.8, Median: 11.25, NMAD: 12.5
Output: error percentile of smallest errors (meters): 16%: 0.5, 50%: 1.75, 84%: 4
Output stats (meters): Mean: 2.2, StdDev: 3.1, RMSE: 3.8, Median: 1.75, NMAD: 1.5
Translation vector (Cartesian, meters): Vector3(1.5,-20.25,3e-1)
Translation vector (North-East-Down, meters): Vector3(-12.5,20,-4.75)
Translation vector magnitude (meters): 24.1
Maximum displacement of points between the source cloud with any initial transform applied to it \
and the source cloud after alignment to the reference: 61.5 m
Warning: The input --max-displacement value is smaller than the final observed displacement. It may be \
advised to increase the former and rerun the tool.
Euler angles (degrees): Vector3(0.001,-0.002,0.0005)
Axis of rotation and angle (degrees): Vector3(0.4,-0.8,0.2) 0.0023
"""


def test_log_summary():
    r = parse_pc_align_log(LOG)
    assert r.translation_ned == (-12.5, 20.0, -4.75) and r.translation_magnitude == 24.1
    assert r.observed_displacement == 61.5 and r.displacement_warning
    assert r.euler_angles == (0.001, -0.002, 0.0005) and r.rotation_angle == 0.0023
    assert r.input_stats == {"mean": 21.2, "stddev": 30.1, "rmse": 36.8, "median": 11.25, "nmad": 12.5,
                             "p16": 2.5, "p50": 11.25, "p84": 40.5}
    assert r.output_stats["nmad"] == 1.5 and r.output_stats["p84"] == 4.0
    quiet = parse_pc_align_log(LOG.replace("Warning: The input --max-displacement value is smaller", "Fine"))
    assert not quiet.displacement_warning
    assert parse_pc_align_log("nothing").translation_ned is None


def test_mola_formats(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("# lon,lat,radius_km\nlon,lat,radius\n354.5, 2.0, 3394.19\n-5.5 2.5 3396.19\n")
    pts = read_mola_csv(path, "1:lon 2:lat 3:radius_km")
    assert np.allclose(pts.lon, [-5.5, -5.5]) and np.allclose(pts.height, [-2000.0, 0.0])
    pts = read_mola_csv(path, "1:lon 2:lat 3:radius_km", datum="MOLA")  # 3,396,000 m sphere
    assert np.allclose(pts.height, [-1810.0, 190.0])
    path.write_text("2.0,354.5,-1500\n")
    assert read_mola_csv(path).height.tolist() == [-1500.0]  # pc_align's default: lat, lon, height
    path.write_text("1,2,3396190.5\n")
    assert read_mola_csv(path, "2:lat 1:lon 3:radius_m").height == pytest.approx([0.5])
    with pytest.raises(QualityError, match="csv-format item"):
        read_mola_csv(path, "1:lon 2:lat 3:elevation")
    with pytest.raises(QualityError, match="not found"):
        read_mola_csv(tmp_path / "none.csv")
    path.write_text("# only comments\n")
    with pytest.raises(QualityError, match="no MOLA points"):
        read_mola_csv(path)


def test_max_displacement_and_pair_files(tmp_path):
    assert suggest_max_displacement(np.array([1.0, -4.0, 10.0, np.nan])) == 12.0
    assert suggest_max_displacement(np.array([0.1, 0.2])) == 10.0  # the floor
    with pytest.raises(QualityError, match="no MOLA point"):
        suggest_max_displacement(np.array([np.nan]))
    assert mola_for_pair(None, "L-R", "L", "R") is None
    one = tmp_path / "all.csv"
    one.write_text("0,0,0\n")
    assert mola_for_pair(one, "L-R", "L", "R") == str(one)
    (tmp_path / "L_R.csv").write_text("0,0,0\n")
    assert mola_for_pair(tmp_path, "L-R", "L", "R") == str(tmp_path / "L_R.csv")
    assert mola_for_pair(tmp_path, "A-B", "A", "B") == str(tmp_path / "A-B.csv")  # missing: named in the error
