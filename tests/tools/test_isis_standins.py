"""The ISIS stand-ins keep the real programs' contract (issue 19 deliver 1, break 8).

Command line and errors as ISIS's UserInterface/IsisAml give them, the programs' own
checks, spiceinit changing the cube in place, and ctxcal/ctxevenodd pixels that are the
real equations' (the same numbers ctxdask computes natively).
"""

from __future__ import annotations

import os
import pathlib
import subprocess

import numpy as np
import pvl
import pytest

from ctxdask.io.isis_read import read_cube, read_label, read_label_text, read_table
from ctxdask.testing import make_edr, rewrite_label

from .conftest import standin_path

PID = "B10_013341_1010_XN_79S172W"
SPICE_TABLES = ("InstrumentPointing", "InstrumentPosition", "BodyRotation", "SunPosition")


def isis(program: str, *args: str, cwd: pathlib.Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CTXDASK_STANDIN", "ISISDATA"))}
    env["PATH"] = standin_path()
    run = subprocess.run([program, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert run.returncode == 0, (program, args, run.stdout, run.stderr)
    return run


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """One image through mroctx2isis, spiceinit, ctxcal, ctxevenodd; a native cube spiceinit-ed."""
    d = tmp_path_factory.mktemp("isis")
    make_edr(d / f"{PID}.IMG", lines=16, line_samples=128)
    isis("mroctx2isis", f"from={PID}.IMG", "to=lev0.cub", cwd=d)
    (d / "lev0.before.cub").write_bytes((d / "lev0.cub").read_bytes())
    isis("spiceinit", "from=lev0.cub", cwd=d)
    isis("ctxcal", "from=lev0.cub", "to=cal.cub", cwd=d)
    isis("ctxevenodd", "from=cal.cub", "to=eo", cwd=d)  # ISIS adds .cub
    from ctxdask.tools.native import calibrate_to_cube

    calibrate_to_cube(str(d / f"{PID}.IMG"), str(d / "native.cub"), even_odd=False)
    (d / "native.before.cub").write_bytes((d / "native.cub").read_bytes())
    isis("spiceinit", "from=native.cub", cwd=d)
    return d


@pytest.mark.parametrize("cube", ["lev0", "native"])
def test_spiceinit_changes_the_cube_in_place_and_keeps_pixels_and_label(chain, cube):
    before, after = chain / f"{cube}.before.cub", chain / f"{cube}.cub"
    np.testing.assert_array_equal(read_cube(before).compute(), read_cube(after).compute())
    old, new = read_label_text(before), read_label_text(after)
    # every keyword the cube had is still written as it was (times as ISIS writes them);
    # only the alignment of a group's "=" follows its longest keyword
    words = {" ".join(line.split()) for line in new.splitlines()}
    for line in old.splitlines():
        if line.strip() and "StartByte" not in line and "Bytes" not in line:
            assert " ".join(line.split()) in words, line
    assert "StartTime             = 2009-06-01T00:38:16.057" in new
    label = pvl.loads(new)  # pvl and ctxdask's own reader accept it
    kernels = read_label(after)["IsisCube"]["Kernels"]
    assert kernels["NaifFrameCode"] == -74021 and kernels["InstrumentPointing"][0] == "Table"
    assert kernels["InstrumentPointingQuality"] == "Reconstructed" and kernels["Source"] == "isis"
    for name in SPICE_TABLES:
        table = read_table(after, name)
        assert len(table) == 2 and table["ET"][1] > table["ET"][0] > 2.9e8
    assert "NaifKeywords" in label and len(label.getall("History")) == 1


def test_ctxcal_and_ctxevenodd_compute_the_real_pixels(chain):
    import ctxdask
    from ctxdask.radiometry.calibrate import calibrate

    native = calibrate(ctxdask.open_edr(chain / f"{PID}.IMG"), even_odd=False)["image"].values
    cal = read_cube(chain / "cal.cub").compute()[0]
    np.testing.assert_allclose(cal, native, rtol=1e-6)
    eo = read_cube(chain / "eo.cub").compute()[0]
    offset = (np.nanmean(cal[:, 1::2]) - np.nanmean(cal[:, 0::2])) / 2  # ctxevenodd main.cpp:82
    np.testing.assert_allclose(eo[:, 0::2], cal[:, 0::2] + offset, rtol=1e-6)
    np.testing.assert_allclose(eo[:, 1::2], cal[:, 1::2] - offset, rtol=1e-6)
    label = read_label(chain / "eo.cub")
    assert label["IsisCube"]["Core"]["Pixels"]["Type"] == "Real"
    assert label["IsisCube"]["Radiometry"]["iof"] != 1.0  # ctxcal's IOF=true default
    tables = {t["Name"] for t in label.getall("Table")}  # propagated (Process.cpp:409-418)
    assert tables == {"Ctx Prefix Dark Pixels", *SPICE_TABLES}


@pytest.mark.parametrize("argv, message, code", [
    (["spiceinit", "fom=x.cub"], "**USER ERROR** Invalid command line.\n**USER ERROR** Unknown parameter [fom].", 2),
    (["spiceinit", "s=yes", "from=x.cub"], "**USER ERROR** Parameter [s] is not unique.", 2),
    (["spiceinit"], "**USER ERROR** Parameter [FROM] has no value.", 2),
    (["spiceinit", "from=lev0.cub", "web=yes", "attach=no"],
     "**USER ERROR** Parameter [ATTACH] must NOT be used if parameter [WEB] equates to true.", 2),
    (["spiceinit", "from=lev0.cub", "shape=sphere"],
     "**USER ERROR** Value of [SHAPE] must be one of [ELLIPSOID, RINGPLANE, SYSTEM, USER].", 2),
    (["spiceinit", "from=missing.cub"], "**I/O ERROR** Unable to open [missing.cub].", 4),
    (["ctxcal", "from=cal.cub", "to=again.cub"], "has already been radiometrically calibrated.", 2),
    (["ctxcal", "from=lev0.cub", "to=x.cub", "iof=maybe"], "**USER ERROR** Illegal value for [IOF], [maybe].", 2),
    (["mroctx2isis", "from=lev0.cub", "to=x.cub"], "**ERROR** PVL Keyword [DATA_SET_ID] not found in label.", 1),
    (["ctxevenodd", "from=cal.cub"], "**USER ERROR** Parameter [TO] has no value.", 2),
])
def test_errors_are_isis_messages_and_exit_codes(chain, argv, message, code):
    run = isis(*argv, cwd=chain, check=False)
    assert run.returncode == code and message in run.stderr, run.stderr
    assert not (chain / "x.cub").exists() and not (chain / "again.cub").exists()


def test_the_programs_own_checks(chain, tmp_path):
    make_edr(tmp_path / "s2.IMG", lines=16, line_samples=128, summing=2, product_id=PID)
    isis("mroctx2isis", "from=s2.IMG", "to=s2.cub", cwd=tmp_path)
    run = isis("ctxevenodd", "from=s2.cub", "to=s2.eo.cub", cwd=tmp_path, check=False)
    assert run.returncode == 2 and "do not have even/odd noise problems" in run.stderr
    make_edr(tmp_path / "lin.IMG", lines=16, line_samples=128, bit_mode="LIN4", product_id=PID)
    run = isis("mroctx2isis", "from=lin.IMG", "to=lin.cub", cwd=tmp_path, check=False)
    assert run.returncode == 2 and "Can't handle Sample Bit Mode [LIN4]" in run.stderr
    rewrite_label(tmp_path / "s2.IMG", lambda t: t.replace("MRO-M-CTX-2-EDR-L0-V1.0", "MGS-M-MOC-NA-2-EDR"))
    run = isis("mroctx2isis", "from=s2.IMG", "to=x.cub", cwd=tmp_path, check=False)
    assert run.returncode == 1 and "does not appear to be in MRO-CTX EDR format" in run.stderr
    # spiceinit knows only an Instrument group it has kernels for
    text = (chain / "lev0.before.cub").read_bytes().replace(b"InstrumentId          = CTX",
                                                            b"InstrumentId          = XYZ")
    (tmp_path / "other.cub").write_bytes(text)
    run = isis("spiceinit", "from=other.cub", cwd=tmp_path, check=False)
    assert run.returncode == 1 and "No Camera Kernels found for the image" in run.stderr
    assert (tmp_path / "other.cub").read_bytes() == text  # a failed spiceinit leaves the cube alone
