"""Tool discovery and ``ctxdask doctor``."""

from __future__ import annotations

import json

from ctxdask.cli import main
from ctxdask.tools.discovery import find_program, isis_environment


def test_doctor_json_sees_standins_and_refuses_to_call_them_real(standins, capsys):
    rc = main(["doctor", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 1 and not report["ok"]
    assert set(report["standins"]) >= {"mroctx2isis", "parallel_stereo", "point2dem"}
    p2d = report["programs"]["point2dem"]
    assert p2d["path"].endswith("standins/point2dem") and "stand-in" in p2d["version"]
    assert report["programs"]["cam2map"]["path"] is None
    caps = {c["what"]: c["ok"] for c in report["capabilities"]}
    assert caps["align DEMs to MOLA (pc_align)"] is True


def test_doctor_text_with_nothing_installed(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("ISISROOT", raising=False)
    monkeypatch.delenv("ISISDATA", raising=False)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "parallel_stereo    NOT FOUND" in out
    assert "ISISROOT is not set" in out
    assert "[NO ] stereo DEMs" in out and "[yes] read, validate and calibrate EDRs natively" in out


def test_isis_version_and_data(tmp_path):
    root, data = tmp_path / "isis", tmp_path / "data"
    (root / "bin").mkdir(parents=True)
    (data / "mro").mkdir(parents=True)
    (root / "isis_version.txt").write_text("8.3.0 # public release\n2024-09-30\n")
    prog = root / "bin" / "spiceinit"
    prog.write_text("#!/bin/sh\nexit 0\n")
    prog.chmod(0o755)
    env = {"ISISROOT": str(root), "ISISDATA": str(data), "PATH": str(root / "bin")}
    isis = isis_environment(env)
    assert isis.version == "8.3.0" and isis.mro_data and isis.problems == []
    info = find_program("spiceinit", env, isis_version=isis.version)
    assert info.found and info.version == "ISIS 8.3.0" and not info.standin
    assert not find_program("ctxcal", env).found
