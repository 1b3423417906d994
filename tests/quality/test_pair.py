"""A pair's delivered products from a stand-in chain: COGs, QA, provenance, STAC catalog, open_dem."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import pathlib
import socket
import sys

import numpy as np
import pystac
import pytest
import rasterio

import ctxdask
from ctxdask.quality.cog import validate_cog
from ctxdask.quality.pair import pair_products
from ctxdask.quality.provenance import build_provenance, edr_record, step_records
from ctxdask.quality.stac import rebuild_catalog, validate
from ctxdask.tools.recipe import build_recipe
from ctxdask.tools.tasks import RunOptions, run_step

TESTS = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "standins"))
from _dem_testing import mola_shots, terrain, use_dem_standins  # noqa: E402

_spec = importlib.util.spec_from_file_location("tools_conftest", TESTS / "tools" / "conftest.py")
_tools = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tools)

LEFT, RIGHT = "P02_001981_1823_XI_02N356W", "P03_002258_1817_XI_01N356W"
#: whole grid steps east and north: the aligned DEM (on the unaligned DEM's grid) has the hole moved by
#: whole pixels; a fractional shift would move the hole's edge rows by point2dem's search radius
OFFSET = [60.0, -40.0, 15.0]
#: where alignment moved the hole at rows 64-127, cols 128-191 of that grid (pc_align undoes OFFSET)
_ROWS, _COLS = int(OFFSET[1] / 20), -int(OFFSET[0] / 20)
HOLE = (slice(64 + _ROWS, 128 + _ROWS), slice(128 + _COLS, 192 + _COLS))


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The whole stand-in chain (ISIS images, stereo, point2dem, pc_align, point2dem, dem_geoid) once."""
    tmp = tmp_path_factory.mktemp("chain")
    mp = pytest.MonkeyPatch()
    try:
        spec = use_dem_standins(mp)(offset=OFFSET, holes=[[64, 128, 64, 64]])
        edr = tmp / "edr"
        edr.mkdir()
        paths = {pid: _tools.write_edr(edr / f"{pid}.IMG", pid) for pid in (LEFT, RIGHT)}
        mola, _, _ = mola_shots(tmp / "mola.csv", spec, n=300)
        recipe = build_recipe(calibration="isis", pc_align=True, dem_geoid=True)
        left, right = recipe.image_calls(LEFT, str(paths[LEFT])), recipe.image_calls(RIGHT, str(paths[RIGHT]))
        calls = left + right + recipe.pair_calls(left[-1], right[-1], mola=str(mola))
        options = RunOptions.from_config(work_dir=str(tmp / "work"), grace=1.0, poll_interval=0.05)
        results = {}
        for call in calls:
            results[call.key] = run_step(call, *[results[k] for k in call.upstream], options=options)
        by_step = {c.step: results[c.key] for c in calls if c.step in {s.name for s in recipe.pair_steps}}
        steps = step_records({key: r.workdir for key, r in results.items()})
        prov = build_provenance(steps, pair_id=f"{LEFT}_{RIGHT}", mola=mola,
                                edrs={pid: edr_record(p) for pid, p in paths.items()})
        runs = json.loads(pathlib.Path(by_step["pc_align"].outputs["runs"]).read_text())
        for run in runs:
            run["log"] = str(pathlib.Path(by_step["pc_align"].workdir) / run["log"])
        out = tmp / "out"
        made = pair_products(
            out / "pairs" / f"{LEFT}_{RIGHT}", dem=by_step["point2dem_aligned"].outputs["dem"],
            ortho=by_step["point2dem_aligned"].outputs["ortho"], error=by_step["point2dem_aligned"].outputs["error"],
            dem_areoid=by_step["dem_geoid"].outputs["dem"], dem_before=by_step["point2dem"].outputs["dem"],
            mola=mola, pc_align_runs=runs, pc_align_errors=by_step["pc_align"].outputs["end_errors"],
            provenance=prov, left_id=LEFT, right_id=RIGHT, datetime="2007-01-02T03:04:05.6Z",
            end_datetime="2007-02-03T00:00:00Z", size=64)
        yield {"spec": terrain.settings(), "calls": calls, "results": results, "paths": paths, "made": made,
               "out": out, "mola": mola}
    finally:
        mp.undo()


def test_every_delivered_raster_is_a_valid_cog_with_nodata_and_the_mars_crs(chain):
    files = chain["made"]["files"]
    rasters = {name: p for name, p in files.items() if str(p).endswith(".tif")}
    assert set(rasters) == {"dem", "dem_areoid", "ortho", "error", "hillshade", "colour_relief"}
    for name, path in rasters.items():
        ok, errors, _ = validate_cog(path)
        assert ok, (name, errors)
        with rasterio.open(path) as src:
            assert src.crs == rasterio.crs.CRS.from_string(terrain.CRS), name
            assert src.overviews(1), name  # 240 x 300 at 128-px tiles needs at least one level
            assert name == "colour_relief" or src.nodata is not None, name
    with rasterio.open(rasters["dem"]) as dem, rasterio.open(rasters["dem_areoid"]) as adj:
        z, a = dem.read(1, masked=True), adj.read(1, masked=True)
        row, col = 10, 20
        lon, lat = (np.degrees(v / terrain.R_MARS) for v in dem.xy(row, col))
        assert z[row, col] - a[row, col] == pytest.approx(terrain.areoid(lon, lat), abs=0.01)
        assert z.mask[HOLE].all() and a.mask[HOLE].all()


def test_qa_metrics_and_residuals_in_the_pair_folder(chain):
    files = chain["made"]["files"]
    qa = json.loads(files["qa_metrics"].read_text())
    residuals = np.genfromtxt(files["residuals"], delimiter=",", names=True)
    # shots in the tile-shaped hole have no DEM height
    assert qa["after_alignment"]["count"] == np.isfinite(residuals["ctx_minus_mola_after_m"]).sum() < 300
    assert abs(qa["after_alignment"]["median"]) < 0.1
    assert qa["before_alignment"]["nmad"] > 5 and qa["pc_align"]["runs"] == 2
    assert qa["holes"]["tile_shaped"] == 1 and qa["grade"] == "warn"
    assert files["residuals"].read_text().startswith("lon,lat,mola_height_m")
    assert files["pc_align_errors"].read_text().startswith("# lon,lat,radius_km,error (meters)")


def test_provenance_lists_every_step_with_its_argv(chain):
    prov = json.loads(chain["made"]["files"]["provenance"].read_text())
    by_key = {s["key"]: s for s in prov["steps"]}
    for call in chain["calls"]:
        step = by_key[call.key]
        expected = list(call.argv)
        if call.kind == "native":
            expected[0] = sys.executable
        assert step["argv"] == expected and step["exit_code"] == 0
        assert step["started"] <= step["ended"] and pathlib.Path(step["log"]).is_file()
        assert step["version"] and (call.kind == "native" or "stand-in" in step["version"])
    runs = [s for s in prov["steps"] if s.get("parent")]
    assert [r["argv"][0] for r in runs] == ["pc_align", "pc_align"]
    assert [r["displacement_warning"] for r in runs] == [True, False]
    for pid, path in chain["paths"].items():
        edr = prov["inputs"]["edrs"][pid]
        assert edr["sha256"] == hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()
        assert edr["product_id"] == pid and edr["start_time"]
    assert prov["inputs"]["mola"]["sha256"] == hashlib.sha256(chain["mola"].read_bytes()).hexdigest()
    assert prov["ctxdask"]["version"] == ctxdask.__version__ and "tools" in prov["ctxdask"]["settings"]
    assert prov["hosts"] == [socket.gethostname()]
    item = chain["made"]["stac"]
    assert item["properties"]["processing:software"]["pc_align"].startswith("ctxdask test stand-in")
    assert "provenance.json" in item["properties"]["processing:lineage"]


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_catalog_opens_validates_offline_and_open_dem_loads(chain, no_network):
    catalog_path, count = rebuild_catalog(chain["out"])
    assert count == 1
    catalog = pystac.Catalog.from_file(str(catalog_path))
    collections = list(catalog.get_collections())
    assert len(collections) == 1
    validate(catalog)
    validate(collections[0])
    items = list(catalog.get_items(recursive=True))
    assert [i.id for i in items] == [f"{LEFT}_{RIGHT}"]
    for item in items:
        checked = validate(item)
        assert any("ssys" in uri for uri in checked) and any("projection" in uri for uri in checked)
        assert any("processing" in uri for uri in checked)
    # self-contained: no absolute hrefs anywhere
    for path in chain["out"].rglob("*.json"):
        data = json.loads(path.read_text())
        for link in data.get("links", []):
            assert not link["href"].startswith(("/", "http")), (path, link)
        for asset in data.get("assets", {}).values():
            assert not asset["href"].startswith(("/", "http")), (path, asset)
    ds = ctxdask.open_dem(items[0], chunks={"x": 128, "y": 128})
    assert set(ds.data_vars) == {"dem", "dem_areoid", "ortho", "error"}
    assert ds.dem.chunks is not None and ds.rio.crs == rasterio.crs.CRS.from_string(terrain.CRS)
    x, y = ds.x.values[10], ds.y.values[10]
    assert float(ds.dem.sel(x=x, y=y)) == pytest.approx(
        float(terrain.dem_heights(np.array(x), np.array(y), chain["spec"], tuple(-v for v in OFFSET))), abs=0.01)
    assert np.isnan(float(ds.dem.isel(y=70, x=130)))
    # the same from the pair folder
    again = ctxdask.open_dem(chain["out"] / "pairs" / f"{LEFT}_{RIGHT}", variables=("dem",))
    assert list(again.data_vars) == ["dem"] and again.attrs["pair_id"] == f"{LEFT}_{RIGHT}"


def test_stac_command_rebuilds_and_reports_invalid_items(chain, tmp_path, capsys, no_network):
    import shutil

    from ctxdask.cli import main

    out = tmp_path / "copy"
    shutil.copytree(chain["out"], out)
    (out / "catalog.json").unlink(missing_ok=True)
    assert main(["stac", str(out), "--collection-id", "batch-1"]) == 0
    text = capsys.readouterr().out
    assert "1 items" in text and "all valid" in text
    assert pystac.Catalog.from_file(str(out / "catalog.json")).get_child("batch-1") is not None
    item_path = next(out.glob("pairs/*/*.stac.json"))
    item = json.loads(item_path.read_text())
    item["properties"]["ssys:targets"] = "Mars"  # must be a list
    item_path.write_text(json.dumps(item))
    assert main(["stac", str(out)]) == 1
    assert "invalid Item" in capsys.readouterr().out
    assert main(["stac", str(tmp_path / "missing")]) == 1  # a bad input (the exit-code table), not usage
    elsewhere = tmp_path / "notes"
    elsewhere.mkdir()
    assert main(["stac", str(elsewhere)]) == 1  # any folder is no batch: nothing is written into it
    assert "not a batch output folder" in capsys.readouterr().err and not list(elsewhere.iterdir())


def test_delivered_json_names_files_relative_to_the_pair_folder(chain):
    """Break 9: the QA's DEM and MOLA shots, provenance's MOLA, the STAC assets: names in the pair folder."""
    files, out = chain["made"]["files"], chain["made"]["files"]["dem"].parent
    qa = json.loads(files["qa_metrics"].read_text())
    assert qa["dem"] == files["dem"].name and qa["mola_points"]["source"] == files["mola"].name
    prov = json.loads(files["provenance"].read_text())
    assert prov["inputs"]["mola"]["path"] == files["mola"].name
    item = json.loads(files["stac"].read_text())
    for asset in item["assets"].values():
        assert not pathlib.PurePath(asset["href"]).is_absolute() and (out / asset["href"]).is_file()


_TWICE = """
import sys
from ctxdask.quality.pair import pair_products
pair_products(sys.argv[1], dem=sys.argv[2], ortho=sys.argv[3], error=sys.argv[4], dem_areoid=sys.argv[5],
              datetime="2007-01-02T03:04:05Z", pair_id="L_R", size=64)
"""


def test_rasters_are_byte_identical_from_run_to_run(chain, tmp_path):
    """Break 11: the same pixels make the same files, header included, in two fresh processes.

    (The colour relief and hillshade carried the dask array's random name as
    their band description, 124 header bytes that changed on every run.)
    """
    import subprocess

    made = {c.step: chain["results"][c.key] for c in chain["calls"]}
    aligned = made["point2dem_aligned"].outputs
    argv = [aligned["dem"], aligned["ortho"], aligned["error"], made["dem_geoid"].outputs["dem"]]
    runs = [subprocess.Popen([sys.executable, "-c", _TWICE, str(tmp_path / name), *argv])
            for name in ("one", "two")]
    assert [p.wait(300) for p in runs] == [0, 0]
    one = {p.name: p.read_bytes() for p in (tmp_path / "one").iterdir()}
    two = {p.name: p.read_bytes() for p in (tmp_path / "two").iterdir() if p.name in one}
    assert {"L_R-colour-relief.tif", "L_R-hillshade.tif", "L_R-DEM.tif", "qa_metrics.json", "L_R.stac.json"} <= set(one)
    assert [name for name in sorted(one) if one[name] != two.get(name)] == []
