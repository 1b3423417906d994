"""The settings model: every key checked once, named in errors; every key settable from the environment."""

from __future__ import annotations

import collections.abc
import dataclasses
import json
import os
import subprocess
import sys
import types
import typing
from typing import Any, Literal

import dask.config
import pytest
import yaml

from ctxdask import settings
from ctxdask.config import DEFAULTS
from ctxdask.settings import Settings, SettingsError, current, leaves, validate


def _ctxdask(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ctxdask", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_the_defaults_are_valid_and_are_the_yaml():
    model = validate(DEFAULTS["ctxdask"])
    assert model == current()
    flat = leaves(model)
    assert flat["tools.asp.stereo-mode"] == "auto" and flat["batch.retries"] == 2
    assert flat["quality.grade.snr"] == {"warn-below": 20.0, "fail-below": 5.0}
    assert flat["tools.timeouts.parallel_stereo"] == 43200.0


@pytest.mark.parametrize("key, value, message", [
    ("tools.asp.stereo-mode", "tiles", "ctxdask.tools.asp.stereo-mode: 'tiles' is not one of 'monolithic', 'tiled', "
                                       "'auto'"),
    ("batch.retriess", 3, "ctxdask.batch.retriess: unknown setting; known here: retries, tile-retries"),
    ("chunk-lines", 0, "ctxdask.chunk-lines: 0 is below the least allowed, 1"),
    ("batch.progress", "sometimes", "ctxdask.batch.progress: 'sometimes' is not true or false"),
    ("quality.stretch-percentiles", [1.0], "ctxdask.quality.stretch-percentiles: [1.0] is not a list of 2 numbers"),
    ("tools.timeouts.spiceinit", "soon", "ctxdask.tools.timeouts.spiceinit: 'soon' is not a number"),
    ("quality.grade.snr", {"warn-beneath": 3}, "ctxdask.quality.grade.snr.warn-beneath: 'warn-beneath' is not one of"),
    # a tile fallback: only stereo options stereo_tile passes on, with values the stereo programs accept
    ("tools.asp.tile-fallbacks", [{"alignment-method": "epipolar"}],
     "ctxdask.tools.asp.tile-fallbacks[0].alignment-method: not a stereo option a tile may change; allowed: "),
    ("tools.asp.tile-fallbacks", [{"corr-kernel": [7, 7]}, {"corr-kernel": 7}],
     "ctxdask.tools.asp.tile-fallbacks[1].corr-kernel: 7 is not 2 values"),
    ("tools.asp.tile-fallbacks", [{"stereo-algorithm": "asp_sgm", "corr-kernel": [21, 21]}],
     "ctxdask.tools.asp.tile-fallbacks[0].corr-kernel: asp_sgm needs an odd kernel between 3 and 9"),
    ("tools.asp.tile-fallbacks", [{"stereo-algorithm": "asp_bm"}],
     "ctxdask.tools.asp.tile-fallbacks[0].subpixel-mode: asp_bm takes a subpixel mode up to 6, not 9"),
    ("batch.hedge-factor", -1, "ctxdask.batch.hedge-factor: -1"),
])
def test_a_wrong_setting_is_named_with_what_it_may_be(key, value, message):
    with dask.config.set({f"ctxdask.{key}": value}), pytest.raises(SettingsError) as caught:
        current()
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_wrong_setting_stops_a_command_with_one_line():
    out = _ctxdask("config", env={"DASK_CTXDASK__TOOLS__CALIBRATION": "fast"})
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip() == "ctxdask config: error: ctxdask.tools.calibration: 'fast' is not one of 'native', " \
                                 "'isis'"


def _hint(key: str) -> Any:
    """The type hint of a leaf key of the model (mapping entries: the mapping's value type)."""
    kind: Any = Settings
    for part in key.split("."):
        if dataclasses.is_dataclass(kind):
            kind = typing.get_type_hints(kind)[part.replace("-", "_")]
        else:  # a mapping of names (maybe optional)
            if typing.get_origin(kind) in (typing.Union, types.UnionType):
                kind = next(a for a in typing.get_args(kind) if a is not type(None))
            kind = typing.get_args(kind)[1]
    return kind


def _other(kind: Any, value: Any) -> Any:
    """A valid value of type ``kind`` different from ``value``."""
    origin = typing.get_origin(kind)
    if origin is Literal:
        return next(a for a in typing.get_args(kind) if a != value)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return _other(options[0], value if value is not None else None)
    if origin is tuple:
        if value and isinstance(value[0], collections.abc.Mapping):  # a list of option sets: a shorter one
            return [dict(v) for v in value[:-1]]
        return [v + 1.0 for v in value] if value else ["extra"]
    if origin is collections.abc.Mapping:
        return {str(k): _other(typing.get_args(kind)[1], v) for k, v in (value or {"x": None}).items()}
    if kind is bool:
        return not value
    if kind is int:
        return (value or 0) + 3
    if kind is float:
        return (value or 0.0) * 0.5 + 0.01  # inside every range: fractions stay fractions
    if kind is str:
        return f"{value or ''}x"
    if kind is Any:
        return "changed"
    raise AssertionError(f"no sample for {kind}")


def test_every_key_can_be_set_from_the_environment():
    defaults = leaves(current())
    expected, env = {}, {}
    for key, value in defaults.items():
        if key in ("tools.native-calibrate", "tools.calibration"):
            continue  # they change what the recipe imports; set below with working values
        expected[key] = _other(_hint(key), value)
        env["DASK_CTXDASK__" + "__".join(p.upper().replace("-", "_") for p in key.split("."))] = repr(expected[key])
    env["DASK_CTXDASK__TOOLS__CALIBRATION"] = "isis"
    expected["tools.calibration"] = "isis"
    assert len(env) > 150
    # an empty mapping (tools.env) is listed by its entries once it has one
    expected = {(f"{k}.x" if v == {"x": "x"} else k): (v["x"] if v == {"x": "x"} else v) for k, v in expected.items()}
    out = _ctxdask("config", "--json", env=env)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    wrong = {k: (shown.get(k), v) for k, v in expected.items()
             if k not in shown or json.loads(json.dumps(v)) != shown[k]["value"]
             or not shown[k]["source"].startswith("environment DASK_CTXDASK__")}
    assert wrong == {}


def test_the_source_of_each_value(tmp_path):
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"ctxdask": {"batch": {"retries": 4}}}))
    out = _ctxdask("config", "batch", "--json", env={"DASK_CONFIG": str(tmp_path),
                                                      "DASK_CTXDASK__BATCH__TILE_RETRIES": "5"})
    shown = json.loads(out.stdout)
    assert shown["batch.retries"] == {"value": 4, "source": f"file {tmp_path}"}
    assert shown["batch.tile-retries"] == {"value": 5, "source": "environment DASK_CTXDASK__BATCH__TILE_RETRIES"}
    assert shown["batch.quality"] == {"value": True, "source": "default"}
    with dask.config.set({"ctxdask.batch.local-threads": 7}):
        assert settings.origins()["batch.local-threads"] == (7, "code")
    assert _ctxdask("config", "batch.nothing").returncode == 2


def test_a_configuration_seen_before_is_not_checked_again(monkeypatch):
    current()
    calls = []
    monkeypatch.setattr(settings.model, "validate", lambda values: calls.append(1) or Settings)
    current()
    assert calls == []
    with dask.config.set({"ctxdask.batch.retries": 9}):
        current()
    assert calls == [1]


def test_a_setting_made_right_after_importing_a_module_is_undone_alone():
    """The defaults are registered when a module that reads settings is imported, not at the first read:
    a ``dask.config.set`` of a ctxdask key before then would, when undone, take the namespace with it."""
    code = ("import dask, ctxdask.edr\n"
            "with dask.config.set({'ctxdask.batch.chunk-size': 1000}):\n"
            "    pass\n"
            "from ctxdask.settings import current\n"
            "print(current().chunk_lines, current().batch.chunk_size)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["4096", "8388608"], out.stderr


def _sections(model: Any, path: str = ""):
    """(path, section) of every section of ``model``, the whole model first."""
    yield path, model
    for field in dataclasses.fields(model):
        value = getattr(model, field.name)
        if dataclasses.is_dataclass(value):
            yield from _sections(value, f"{path}.{field.name}" if path else field.name)


def test_every_section_defaults_to_the_yaml_and_knows_where_it_sits():
    model = validate(DEFAULTS["ctxdask"])
    found = list(_sections(model))
    assert len(found) == 17
    for path, section in found:
        assert type(section)() == section, path  # written once, in ctxdask.yaml
        assert type(section).path == path


def test_a_section_is_built_from_the_settings_with_checked_overrides():
    batch = settings.BatchSection.from_config(retries=5, progress=None, timeouts={"fetch": 60})
    assert batch.retries == 5 and batch.progress is True  # None: an option not given
    assert batch.timeouts == {"fetch": 60.0, "validate": 1800.0, "quality": 1800.0, "pair_quality": 1800.0}
    with pytest.raises(SettingsError, match=r"^ctxdask\.batch\.retries: -1 is below the least allowed, 0$"):
        settings.BatchSection.from_config(retries=-1)
    with pytest.raises(TypeError, match="BatchSection has no setting 'retriess'"):
        settings.BatchSection.from_config(retriess=1)

    class Checked(settings.TileSize):  # a domain class: the section's fields, its own rule
        def __post_init__(self):
            if self.padding >= self.size:
                raise SettingsError(self.path + ".padding", "must be less than the tile size")

    assert Checked.from_config(size=64, padding=8).size == 64 and isinstance(Checked.from_config(), Checked)
    with pytest.raises(SettingsError, match="tools.asp.tiles.padding: must be less"):
        Checked.from_config(size=8, padding=8)


def test_settings_changed_by_dotted_keys():
    base = current()
    changed = base.override({"batch.retry-failed": True, "batch.steps": ["validate"],
                             "tools.timeouts.parallel_stereo": 60, "tools.env.PATH": "/opt/asp/bin"})
    assert changed.batch.retry_failed is True and changed.batch.steps == ("validate",)
    assert changed.tools.timeouts["parallel_stereo"] == 60.0
    assert changed.tools.timeouts["point2dem"] == base.tools.timeouts["point2dem"]  # one entry, not the mapping
    assert changed.tools.env == {**base.tools.env, "PATH": "/opt/asp/bin"}
    assert base == current()  # settings are values: the configuration is untouched
    with pytest.raises(SettingsError, match=r"^ctxdask\.batch\.retry-failed: 'yes please' is not true or false$"):
        base.override({"batch.retry_failed": "yes please"})
    with pytest.raises(SettingsError, match=r"^ctxdask\.bach: unknown setting; known here: chunk-lines, zarr"):
        base.override({"bach.retries": 1})
    with pytest.raises(SettingsError, match=r"^ctxdask\.batch\.retries: 2 has no setting 'max'$"):
        base.override({"batch.retries.max": 1})


def test_a_section_made_directly_or_replaced_is_checked_too():
    with pytest.raises(SettingsError, match=r"^ctxdask\.tools\.asp\.tiles\.size: 0 is below the least allowed, 1$"):
        settings.TileSize(size=0)
    with pytest.raises(SettingsError, match=r"^ctxdask\.batch\.min-tile-fraction: 1\.5 is above the most allowed, 1$"):
        dataclasses.replace(settings.BatchSection(), min_tile_fraction=1.5)
    with pytest.raises(SettingsError, match=r"^ctxdask\.catalog\.download\.requests-per-second: 0\.0 must be more "):
        settings.CatalogDownload(requests_per_second=0)
    assert settings.TileSize(size=64.0).size == 64 and isinstance(settings.TileSize(size=64.0).size, int)


def test_a_list_of_names_from_the_environment_may_be_written_with_commas():
    out = _ctxdask("config", "batch", "--json", env={"DASK_CTXDASK__BATCH__STEPS": "fetch, validate",
                                                     "DASK_CTXDASK__BATCH__DELIVER": "point2dem"})
    shown = json.loads(out.stdout)
    assert shown["batch.steps"]["value"] == ["fetch", "validate"]
    assert shown["batch.deliver"]["value"] == ["point2dem"]
