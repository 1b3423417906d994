"""``ctxdask batch`` and ``ctxdask status`` on the command line."""

from __future__ import annotations

import json

import pytest

from ctxdask.cli import main
from ctxdask.commands.batch import parse_duration

from .conftest import IDS, make_images, write_pairs


def test_durations():
    assert parse_duration("1h30m") == 5400 and parse_duration("90") == 90 and parse_duration("2.5m") == 150
    for bad in ("", "ten", "5 weeks", "0"):
        with pytest.raises(Exception, match="duration|positive"):
            parse_duration(bad)


@pytest.mark.cluster
@pytest.mark.timeout(180)
def test_batch_then_status(tmp_path, capsys):
    edr = make_images(tmp_path / "edr", IDS[:3])
    pairs = write_pairs(tmp_path / "pairs.txt", [(IDS[0], IDS[1]), (IDS[0], IDS[2])], extra="M oops\n")
    out = tmp_path / "out"
    code = main(["batch", str(pairs), "--out", str(out), "--edr-dir", str(edr), "--local", "1",
                 "--steps", "validate", "--timeout", "validate=2m", "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "pairs:  2 done" in text and "line 3" in text
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "pairs:  2 done" in text and "validate           3 done" in text and "line 3 skipped" in text
    assert main(["status", str(out / "ctxdask-batch.sqlite"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == {"done": 2} and report["last_run"]["status"] == "done"
    assert report["steps"]["fetch"] == {"done": 3}
    # the run's settings are JSON, not a string of it
    assert report["last_run"]["settings"]["steps"] == ["fetch", "validate"]
    assert report["last_run"]["settings"]["batch"]["timeouts"]["validate"] == 120


def test_status_without_database(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 1  # as `ctxdask report`: a bad input, not a usage error
    assert "no tracking database" in capsys.readouterr().err


def test_batch_refuses_unknown_steps(tmp_path, capsys):
    pairs = write_pairs(tmp_path / "pairs.txt", [(IDS[0], IDS[1])])
    assert main(["batch", str(pairs), "--out", str(tmp_path / "out"), "--edr-dir", str(tmp_path),
                 "--steps", "stereo", "--no-progress"]) == 2  # a wrong option value: usage
    assert "unknown steps" in capsys.readouterr().err
