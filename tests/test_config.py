"""Every documented setting works from a ``DASK_CTXDASK__...`` environment variable.

dask reads the environment once, when it is imported, so each case runs in a fresh
Python process with the variables set. One test per top-level section of
``ctxdask/ctxdask.yaml``; each sets a nested key whose yaml name has a hyphen (the
variable can only spell it with ``_``), checks the value reaches the code that uses
it, and that the section's other yaml values survive.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import dask
import pytest

from ctxdask import config

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _fresh(code: str, cwd: pathlib.Path, **variables: str):
    """Run ``code`` in a new interpreter with ``variables`` set; return the JSON it prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    env.update(variables)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_chunk_lines_from_the_environment(tmp_path):
    got = _fresh("""
        import json
        import ctxdask
        from ctxdask.testing import make_edr
        ds = ctxdask.open_edr(make_edr("x.IMG", lines=512))
        print(json.dumps({"chunks": ds["image"].chunks[0], "zarr": ctxdask.config.get("zarr.compressor")}))
    """, tmp_path, DASK_CTXDASK__CHUNK_LINES="128")
    assert got["chunks"] == [128, 128, 128, 128]
    assert got["zarr"]["cname"] == "lz4"  # the other sections untouched


def test_zarr_compressor_from_the_environment(tmp_path):
    got = _fresh("""
        import json, pathlib
        import ctxdask
        from ctxdask.testing import make_edr
        ctxdask.write(ctxdask.open_edr(make_edr("x.IMG", lines=256)), "x.zarr")
        meta = json.loads(pathlib.Path("x.zarr/image/zarr.json").read_text())
        print(json.dumps([c for c in meta["codecs"] if c["name"] == "blosc"][0]["configuration"]))
    """, tmp_path, DASK_CTXDASK__ZARR__COMPRESSOR__CLEVEL="9")
    assert got["clevel"] == 9
    assert (got["cname"], got["shuffle"]) == ("lz4", "shuffle")  # siblings from the yaml


def test_validate_settings_from_the_environment(tmp_path):
    code = """
        import json
        import ctxdask
        from ctxdask.catalog.download import DownloadSettings
        from ctxdask.testing import make_edr
        report = ctxdask.validate(make_edr("x.IMG", lines=256, checksum="wrong"))
        print(json.dumps({"ok": report.ok, "summary": report.summary(),
                          "validate": ctxdask.config.get("validate"),
                          "download": DownloadSettings.from_config().checksum}))
    """
    # the configuration page's example: a CHECKSUM mismatch rejects, in validation and after downloads
    got = _fresh(code, tmp_path, DASK_CTXDASK__VALIDATE__CHECKSUM="reject")
    assert not got["ok"] and "CHECKSUM mismatch" in got["summary"]
    assert got["download"] == "reject"
    assert got["validate"] == {"checksum": "reject", "block-lines": 4096}
    # a hyphenated key: the mapping carries the yaml's name, and checksum keeps its default
    got = _fresh(code, tmp_path, DASK_CTXDASK__VALIDATE__BLOCK_LINES="64")
    assert got["validate"] == {"checksum": "warn", "block-lines": 64}
    assert got["ok"] and got["download"] == "warn"


def test_flat_settings_from_the_environment(tmp_path):
    got = _fresh("""
        import dataclasses, json
        from ctxdask import config
        from ctxdask.radiometry.flatbuild import FlatSettings
        print(json.dumps({"build": dataclasses.asdict(FlatSettings.from_config()),
                          "gap": config.get("flat")["max-month-gap"]}))
    """, tmp_path, DASK_CTXDASK__FLAT__BUILD__MIN_IMAGES="7", DASK_CTXDASK__FLAT__MAX_MONTH_GAP="3")
    assert got["build"]["min_images"] == 7 and got["gap"] == 3
    assert (got["build"]["method"], got["build"]["split_every"], got["build"]["min_valid_lines"]) == ("median", 8, 256)


def test_catalog_settings_from_the_environment(tmp_path):
    got = _fresh("""
        import dataclasses, json
        from ctxdask.catalog.download import DownloadSettings
        from ctxdask.catalog.lookup import product_url
        from ctxdask.catalog.pairs import PairCriteria
        print(json.dumps({"download": dataclasses.asdict(DownloadSettings.from_config()),
                          "pairs": dataclasses.asdict(PairCriteria.from_config()),
                          "url": product_url("MROX_0001", "DATA/T01_000801_1353_XN_44S195W.IMG")}))
    """, tmp_path, DASK_CTXDASK__CATALOG__DOWNLOAD__MAX_CONCURRENT="4",
        DASK_CTXDASK__CATALOG__PAIRS__MIN_OVERLAP="0.5", DASK_CTXDASK__CATALOG__LOWERCASE_DIRS="false")
    assert got["download"]["max_concurrent"] == 4
    assert (got["download"]["retries"], got["download"]["backoff_max"]) == (6, 120)
    assert got["download"]["user_agent"].startswith("ctxdask/")
    assert got["pairs"]["min_overlap"] == 0.5 and got["pairs"]["max_emission"] == 45.0
    assert got["url"].endswith("/MROX_0001/DATA/T01_000801_1353_XN_44S195W.IMG")
    assert got["url"].startswith("https://planetarydata.jpl.nasa.gov/")


def test_tools_settings_from_the_environment(tmp_path):
    got = _fresh("""
        import json
        import dask
        from ctxdask.tools.recipe import build_recipe
        s = build_recipe().settings.tools
        with dask.config.set({"ctxdask.tools.asp.stereo-mode": "monolithic"}):
            overridden = build_recipe().settings.tools.asp.stereo_mode
        print(json.dumps({"mode": s.asp.stereo_mode, "web": s.isis.spiceinit_web, "timeouts": s.timeouts,
                          "memory": s.asp.corr_memory_limit_mb, "algorithm": s.asp.stereo_algorithm,
                          "tile": s.asp.tiles.size, "geoid": s.asp.geoid, "even_odd": s.even_odd,
                          "resources": s.resources, "set": overridden}))
    """, tmp_path, DASK_CTXDASK__TOOLS__ASP__STEREO_MODE="tiled", DASK_CTXDASK__TOOLS__ISIS__SPICEINIT_WEB="true",
        DASK_CTXDASK__TOOLS__TIMEOUTS__PARALLEL_STEREO="600", DASK_CTXDASK__TOOLS__ASP__CORR_MEMORY_LIMIT_MB="2048",
        DASK_CTXDASK__TOOLS__RESOURCES__STEREO_TILE__MEMORY_MB="4096")
    assert got["mode"] == "tiled" and got["web"] is True and got["memory"] == 2048
    assert got["timeouts"]["parallel_stereo"] == 600 and got["timeouts"]["point2dem"] == 7200
    assert got["resources"]["stereo_tile"] == {"stereo": 1, "memory_mb": 4096}  # not a yaml key: as written
    assert (got["algorithm"], got["tile"], got["geoid"], got["even_odd"]) == ("asp_mgm", 2048, "MOLA", True)
    assert got["set"] == "monolithic"  # dask.config.set still wins over the environment


def test_batch_settings_from_the_environment(tmp_path):
    got = _fresh("""
        import dataclasses, json
        from ctxdask.settings import BatchSection
        from ctxdask.batch.tiles import TilePolicy
        b = BatchSection.from_config()
        print(json.dumps({"tiles": dataclasses.asdict(TilePolicy.from_config()), "window": b.chunk_window,
                          "threads": b.delivery_threads, "timeouts": dict(b.timeouts),
                          "cleanup": b.cleanup_scratch}))
    """, tmp_path, DASK_CTXDASK__BATCH__TILE_RETRIES="5", DASK_CTXDASK__BATCH__CHUNK_WINDOW="8",
        DASK_CTXDASK__BATCH__TIMEOUTS__PAIR_QUALITY="60",
        DASK_CTXDASK__TOOLS__ASP__TILE_FALLBACKS="[{'stereo-algorithm': 'asp_sgm'}]")
    assert got["tiles"] == {"retries": 5, "min_fraction": 0.9, "sets": ["asp_mgm", "asp_sgm"]}
    assert (got["window"], got["threads"], got["cleanup"]) == (8, 2, True)
    assert got["timeouts"] == {"fetch": 3600, "validate": 1800, "quality": 1800, "pair_quality": 60}


def test_quality_settings_from_the_environment(tmp_path):
    got = _fresh("""
        import json
        from ctxdask import config
        from ctxdask.quality.grade import grade
        good = {"valid_fraction": 1.0, "lost_line_fraction": 0.0, "saturated_fraction": 0.0,
                "even_odd_relative": 0.0, "dark_noise": 1.0, "snr": 100.0, "contrast": 0.5, "haze": 0.1}
        print(json.dumps({"warn": grade({**good, "snr": 25.0}).status, "fail": grade({**good, "snr": 3.0}).status,
                          "pass": grade(good).status, "holes": config.get("quality.dem-holes"),
                          "tilt": config.get("quality.dem-grade")["tilt"]}))
    """, tmp_path, DASK_CTXDASK__QUALITY__GRADE__SNR__WARN_BELOW="30.0",
        DASK_CTXDASK__QUALITY__DEM_HOLES__MIN_TILE_PIXELS="32",
        DASK_CTXDASK__QUALITY__DEM_GRADE__TILT__WARN_ABOVE="1.0")
    assert (got["warn"], got["fail"], got["pass"]) == ("warn", "fail", "pass")  # fail-below 5 kept
    assert got["holes"] == {"max-cells": 4_000_000, "min-tile-pixels": 32, "rectangularity": 0.9}
    assert got["tilt"] == {"warn-above": 1.0, "fail-above": 2.0}


def test_documented_examples(tmp_path):
    """Every ``DASK_CTXDASK__...=value`` of the configuration page (and the README), and a user yaml file, are read."""
    text = "\n".join((ROOT / name).read_text(encoding="utf-8")
                     for name in ("README.md", "docs/reference/configuration.rst", "docs/install.md"))
    examples = {name: value.strip('"') for name, value
                in re.findall(r'\b(DASK_CTXDASK__\w+)=("[^"]*"|[^\s`]+)', text)}
    assert {"DASK_CTXDASK__TOOLS__ASP__STEREO_MODE", "DASK_CTXDASK__BATCH__TILE_RETRIES",
            "DASK_CTXDASK__TOOLS__ENV"} <= set(examples)
    (tmp_path / "dask").mkdir()
    (tmp_path / "dask" / "mine.yaml").write_text("ctxdask:\n  tools:\n    asp:\n      dem-spacing: 18.0\n")
    keys = [name[len("DASK_CTXDASK__"):].lower().replace("__", ".") for name in examples]
    got = _fresh(f"""
        import json
        from ctxdask import config
        keys = {keys!r}
        print(json.dumps({{"dotted": [config.get(k.replace("_", "-")) for k in keys],
                          "whole": [config.get(k.rsplit(".", 1)[0])[k.rsplit(".", 1)[1].replace("_", "-")]
                                    for k in keys],
                          "spacing": config.get("tools")["asp"]["dem-spacing"]}}))
    """, tmp_path, DASK_CONFIG=str(tmp_path / "dask"), **examples)
    expected = [dask.config.interpret_value(value) for value in examples.values()]
    assert got["dotted"] == expected and got["whole"] == expected
    assert got["spacing"] == 18.0


def test_keys_spelt_as_the_yaml_in_process():
    """Whichever spelling ``dask.config.set`` is given, readers of whole mappings see the yaml's."""
    with dask.config.set({"ctxdask.batch.tile_retries": 7, "ctxdask.tools.timeouts.my_step": 5}):
        batch = config.get("batch")
        assert batch["tile-retries"] == 7 and "tile_retries" not in batch
        assert config.get("tools.timeouts")["my_step"] == 5  # not a yaml key: kept as written
        assert config.current()["batch"]["tile-retries"] == 7
    batch = config.get("batch")
    batch["tile-retries"] = 99  # a copy: the global config is not changed through it
    assert config.get("batch.tile-retries") == 2
    assert config.get("quality.stretch-percentiles") == [0.5, 99.5]  # not a mapping: as it is


@pytest.mark.parametrize("key", ["tools.asp.stereo-mode", "tools.asp.stereo_mode"])
def test_get_of_a_leaf_either_spelling(key):
    with dask.config.set({"ctxdask.tools.asp.stereo-mode": "tiled"}):
        assert config.get(key) == "tiled"
