"""Checks against the real ISIS and ASP programs; skipped where they are not installed."""

from __future__ import annotations

import os
import shutil

import pytest

from ctxdask.exceptions import ToolFailedError
from ctxdask.tools.discovery import find_program
from ctxdask.tools.runner import run


def _real(name: str) -> bool:
    info = find_program(name, timeout=60)
    return info.found and not info.standin


@pytest.mark.needs_asp
def test_real_asp_reports_its_version():
    if not _real("point2dem"):
        pytest.skip("the real ASP point2dem is not on PATH")
    info = find_program("point2dem", timeout=60)
    assert info.version and "stand-in" not in info.version


@pytest.mark.needs_isis
def test_real_mroctx2isis_rejects_a_non_ctx_file(tmp_path):
    if not (_real("mroctx2isis") and os.environ.get("ISISROOT")):
        pytest.skip("the real ISIS mroctx2isis (with ISISROOT) is not available")
    bogus = tmp_path / "bogus.IMG"
    bogus.write_text("PDS_VERSION_ID = PDS3\nINSTRUMENT_ID = HIRISE\nEND\n")
    with pytest.raises(ToolFailedError) as info:
        run([shutil.which("mroctx2isis"), f"from={bogus}", "to=out.cub"], tmp_path, 120)
    assert info.value.returncode != 0 and "ERROR" in info.value.log_tail.upper()
