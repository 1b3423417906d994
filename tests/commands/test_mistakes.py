"""Every sub-command against a table of mistakes, as a user meets them: ``python -m ctxdask ...``.

For each mistake: no traceback on either stream, the exit code of the documented table
(:mod:`ctxdask.commands`: 1 a bad input, 2 a wrong command line), and one line that names the
file and the problem. The commands run in parallel subprocesses (module fixture ``outcomes``),
each test function checks one class of problem.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import shutil
import socket
import subprocess
import sys

import pytest

from ctxdask.cli import _COMMANDS
from ctxdask.testing import make_edr

pytestmark = pytest.mark.timeout(600)

EDR = "B10_013341_1010_XN_79S172W.IMG"


@dataclasses.dataclass(frozen=True)
class Mistake:
    """One command line, the exit code it must give, and what its error line must say."""

    argv: tuple[str, ...]
    code: int
    names: str  # the file (or option) the message must name
    problem: str  # words of the problem, on the same line

    @property
    def id(self) -> str:
        # the closed port differs between pytest-xdist workers: ids must not (collections are compared)
        return " ".join(self.argv).replace(f":{_PORT}/", ":PORT/")


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder of things that go wrong: pipes, devices, link loops, folders where files belong."""
    ws = tmp_path_factory.mktemp("mistakes")
    make_edr(ws / EDR, lines=32, line_samples=128)
    (ws / "adir").mkdir()
    (ws / "adir.cub").mkdir()
    (ws / "notzarr.zarr").mkdir()
    (ws / "notzarr.zarr" / "precious.txt").write_text("someone's data\n")
    (ws / "afile").write_text("just text\n")
    (ws / "empty.IMG").write_bytes(b"")
    (ws / "notes.IMG").write_text("these are notes, not a PDS3 label\n" * 4)
    os.mkfifo(ws / "pipe.IMG")
    os.symlink("loop_b", ws / "loop_a")
    os.symlink("loop_a", ws / "loop_b")
    os.symlink("gone.IMG", ws / "dangling.IMG")
    (ws / "pairs.txt").write_text(f"{EDR[:-4]} {EDR[:-4]}\n")
    (ws / "urls.txt").write_text(f"http://127.0.0.1:{_closed_port()}/{EDR}\n")
    return ws


#: a correct command line of each sub-command (relative to the workspace), to misspell an option in
CORRECT = {
    "batch": ("pairs.txt", "--out", "o", "--edr-dir", "adir"),
    "calibrate": (EDR, "out.cub"),
    "fetch": ("P02_001981", "--urls", "urls.txt"),
    "flat": (EDR, "--out", "flat"),
    "info": (EDR,),
    "select": ("adir",),
    "serve": ("adir",),
    "stac": ("adir",),
    "pairs": ("cumindex.lbl",),
    "report": ("adir",),
    "status": ("adir",),
    "validate": (EDR,),
}

_PORT = _closed_port()


def _table() -> dict[str, list[Mistake]]:
    port = _PORT
    m = Mistake
    return {
        "missing": [
            m(("info", "gone.IMG"), 1, "gone.IMG", "no such file"),
            m(("calibrate", "gone.IMG", "out.cub"), 1, "gone.IMG", "no such file"),
            m(("calibrate", EDR, "out.cub", "--flat", "noflat.cub"), 1, "noflat.cub", "no such file"),
            m(("fetch", "P02_001981", "--urls", "missing.txt"), 1, "missing.txt", "no such file"),
            m(("pairs", "nocumindex.lbl"), 1, "nocumindex.lbl", "no such file"),
            m(("batch", "nopairs.txt", "--out", "o", "--edr-dir", "adir"), 1, "nopairs.txt", "no such file"),
            m(("batch", "pairs.txt", "--out", "o", "--edr-dir", "noedr"), 1, "noedr", "no such folder"),
            m(("status", "nobatch"), 1, "nobatch", "no tracking database"),
            m(("flat", "gone.IMG", "--out", "flat"), 1, "gone.IMG", "no such file"),
            m(("serve", "adir"), 1, "adir", "no tracking database"),
            m(("stac", "nobatch"), 1, "nobatch", "no such folder"),
            m(("flat", "--from-batch", "nobatch", "--out", "flat"), 1, "nobatch", "no batch tracking database"),
            m(("report", "nobatch"), 1, "nobatch", "no tracking database"),
            m(("serve", "nobatch"), 1, "nobatch", "no tracking database"),
            m(("select", "nobatch", "--where", "status = done"), 1, "nobatch", "no tracking database"),
        ],
        "not a regular file": [
            m(("info", "adir"), 1, "adir", "is a folder"),
            m(("info", "pipe.IMG"), 1, "pipe.IMG", "named pipe"),
            m(("calibrate", "pipe.IMG", "out.cub"), 1, "pipe.IMG", "named pipe"),
            m(("info", "/dev/null"), 1, "/dev/null", "character device"),
            m(("validate", "/dev/zero"), 1, "/dev/zero", "character device"),
            m(("info", "empty.IMG"), 1, "empty.IMG", "empty"),
            m(("info", "notes.IMG"), 1, "notes.IMG", "label"),
            m(("fetch", "P02_001981", "--urls", "adir"), 1, "adir", "is a folder"),
            m(("batch", "pairs.txt", "--out", "o", "--edr-dir", "afile"), 1, "afile", "not a folder"),
            m(("status", "afile"), 1, "afile", "not a ctxdask tracking database"),
            m(("stac", "afile"), 1, "afile", "not a folder"),
            m(("stac", "adir"), 1, "adir", "not a batch output folder"),
            m(("batch", "pairs.txt", "--out", "afile", "--edr-dir", "adir"), 1, "afile", "is a file, not a folder"),
            m(("fetch", "P02_001981", "--urls", "urls.txt", "--to", "afile"), 1, "afile", "is a file, not a folder"),
            m(("report", "adir", "--db", "afile"), 1, "afile", "not a ctxdask tracking database"),
            m(("serve", "adir", "--db", "afile"), 1, "afile", "not a ctxdask tracking database"),
            m(("select", "adir", "--db", "afile"), 1, "afile", "not a ctxdask tracking database"),
        ],
        "symbolic links": [
            m(("info", "loop_a"), 1, "loop_a", "loop of symbolic links"),
            m(("calibrate", "loop_a", "out.cub"), 1, "loop_a", "loop of symbolic links"),
            m(("fetch", "P02_001981", "--urls", "loop_a"), 1, "loop_a", "loop of symbolic links"),
            m(("info", "dangling.IMG"), 1, "dangling.IMG", "gone.IMG, which does not exist"),
        ],
        "unreachable URL": [
            m(("info", f"http://127.0.0.1:{port}/{EDR}"), 1, f"127.0.0.1:{port}", "cannot reach the server"),
            m(("calibrate", f"http://127.0.0.1:{port}/{EDR}", "out.cub"), 1, f"127.0.0.1:{port}",
              "cannot reach the server"),
            m(("pairs", f"http://127.0.0.1:{port}/cumindex.lbl"), 1, f"127.0.0.1:{port}", "cannot reach the server"),
        ],
        "output path": [
            m(("calibrate", EDR, "out.png"), 1, "out.png", "unknown output format '.png'"),
            m(("calibrate", EDR, "out.nc"), 1, "out.nc", "unknown output format '.nc'"),
            m(("calibrate", EDR, "out"), 1, "out", "no suffix"),
            m(("calibrate", EDR, "nodir/sub/x.cub"), 1, "nodir/sub/x.cub", "does not exist"),
            m(("calibrate", EDR, "nodir/sub/x.tif"), 1, "nodir/sub/x.tif", "does not exist"),
            m(("calibrate", EDR, "nodir/sub/x.zarr"), 1, "nodir/sub/x.zarr", "does not exist"),
            m(("calibrate", EDR, "afile/x.cub"), 1, "afile/x.cub", "is a file, not a folder"),
            m(("calibrate", EDR, "adir.cub"), 1, "adir.cub", "is an existing folder"),
            m(("calibrate", EDR, "notzarr.zarr"), 1, "notzarr.zarr", "not a zarr store"),
            m(("calibrate", EDR, "new.zarr"), 0, "", ""),  # a new store in an existing folder: fine
            m(("demo", "--out", "afile"), 1, "afile", "is a file"),
            m(("flat", EDR, "--out", "nodir/sub/f"), 1, "nodir/sub/f", "does not exist"),
            m(("flat", EDR, "--out", "afile", "--by", "month"), 1, "afile", "is a file"),
        ],
        "misspelled option": [
            *(m((name, *CORRECT.get(name, ()), "--jsonn"), 2, "--jsonn", "unrecognized arguments")
              for name in _COMMANDS),
            m(("validate", EDR, "--jsn"), 2, "--jsn", "did you mean --json?"),
            # an abbreviation is a mistake too, never quietly the option it starts
            m(("calibrate", EDR, "out.cub", "--unit", "rate"), 2, "--unit", "did you mean --units?"),
        ],
        "bad option value": [
            m(("calibrate", EDR, "out.cub", "--units", "watts"), 2, "--units", "invalid choice"),
            m(("calibrate", EDR, "out.cub", "--chunk-lines", "0"), 2, "--chunk-lines", "must be 1 or more"),
            m(("demo", "--workers", "0"), 2, "--workers", "must be 1 or more"),
            m(("flat", "--out", "flat"), 2, "ctxdask flat", "no EDRs given"),
            m(("flat", EDR, "--out", "flat", "--min-images", "0"), 2, "--min-images", "must be 1 or more"),
            m(("status", "adir", "--failures", "-1"), 2, "--failures", "must be 0 or more"),
            m(("batch", "pairs.txt", "--out", "o", "--edr-dir", "adir", "--timeout", "parallel_stereo=soon"), 2,
              "--timeout", "not a duration"),
            m(("batch", "pairs.txt", "--out", "o", "--edr-dir", "adir", "--steps", "stereo"), 2, "--steps",
              "unknown steps"),
            m(("fetch", "--urls", "urls.txt"), 2, "ctxdask fetch", "no product ids given"),
            m(("fetch", "P02_001981"), 2, "--index", "one of the arguments"),
            m(("validate",), 2, "FILE", "required"),
            m(("flat", EDR, "--out", "f", "--by", "week"), 2, "--by", "invalid choice"),
            m(("flat", "--out", "f"), 2, "ctxdask flat", "no EDRs given"),
            m(("nosuchcommand",), 2, "nosuchcommand", "invalid choice"),
            m(("doctor", "extra"), 2, "extra", "unrecognized arguments"),
            m(("config", "batch.retriess"), 2, "batch.retriess", "no such setting"),
        ],
    }


@pytest.fixture(scope="module")
def outcomes(workspace):
    """Run every mistake of the table once, four at a time; ``{Mistake: CompletedProcess}``."""
    mistakes = [m for rows in _table().values() for m in rows]
    env = dict(os.environ, COLUMNS="100")
    env.pop("CTXDASK_DEBUG", None)

    def run(mistake: Mistake) -> subprocess.CompletedProcess:
        # a pipe or device must never make a command wait: the timeout fails the test instead
        return subprocess.run([sys.executable, "-m", "ctxdask", *mistake.argv], cwd=workspace, env=env,
                              capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return dict(zip(mistakes, pool.map(run, mistakes)))


def _check(outcomes, mistake: Mistake) -> None:
    result = outcomes[mistake]
    both = result.stdout + result.stderr
    assert "Traceback" not in both, both
    assert result.returncode == mistake.code, (mistake.id, both)
    if mistake.code == 0:
        return
    if mistake.code == 2:
        assert "usage: ctxdask" in result.stderr, result.stderr
        if mistake.argv[0] in _COMMANDS:  # the sub-command's own usage, not the top level's
            assert f"usage: ctxdask {mistake.argv[0]}" in result.stderr, result.stderr
    if mistake.argv[0] == "validate" and mistake.code == 1:  # the report is its result: file, then findings
        assert f"{mistake.names}: INVALID" in result.stdout and mistake.problem in result.stdout, both
        return
    # one line names the file and says the problem
    lines = [line for line in result.stderr.splitlines() if mistake.problem in line]
    assert lines, (mistake.id, both)
    assert any(mistake.names in line for line in lines), (mistake.id, both)


def _cases(kind: str):
    return [pytest.param(m, id=m.id) for m in _table()[kind]]


@pytest.mark.parametrize("mistake", _cases("missing"))
def test_missing_files_and_folders(outcomes, mistake):
    _check(outcomes, mistake)


@pytest.mark.parametrize("mistake", _cases("not a regular file"))
def test_folders_pipes_devices_and_non_products(outcomes, mistake):
    _check(outcomes, mistake)


@pytest.mark.parametrize("mistake", _cases("symbolic links"))
def test_symbolic_link_loops_and_dangling_links(outcomes, mistake):
    _check(outcomes, mistake)


@pytest.mark.parametrize("mistake", _cases("unreachable URL"))
def test_unreachable_server(outcomes, mistake):
    _check(outcomes, mistake)


@pytest.mark.parametrize("mistake", _cases("output path"))
def test_output_paths(outcomes, mistake):
    _check(outcomes, mistake)


@pytest.mark.parametrize("mistake", _cases("misspelled option"))
def test_misspelled_options_show_the_sub_command_usage(outcomes, mistake):
    _check(outcomes, mistake)


@pytest.mark.parametrize("mistake", _cases("bad option value"))
def test_bad_option_values_are_usage_errors(outcomes, mistake):
    _check(outcomes, mistake)


def test_every_command_meets_mistakes_beyond_a_misspelled_option():
    covered = {m.argv[0] for kind, rows in _table().items() if kind != "misspelled option" for m in rows}
    missing = set(_COMMANDS) - covered
    assert not missing, f"add the mistakes a user makes with {sorted(missing)} to the table"


def test_output_folder_rule_is_the_same_for_every_writer(outcomes, workspace):
    """A missing folder is refused for .cub, .tif and .zarr alike, and nothing is created."""
    assert not (workspace / "nodir").exists()
    assert (workspace / "notzarr.zarr" / "precious.txt").is_file()  # not replaced


# -- permissions: root reads everything, so drop the capabilities that let it ------------------


def _without_dac_override() -> list[str]:
    """argv prefix that runs a command without the permission-bypassing capabilities of root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and util-linux setpriv is not installed: permissions cannot be tested")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    ws = tmp_path_factory.mktemp("locked")
    os.chmod(ws, 0o755)
    make_edr(ws / EDR, lines=32, line_samples=128)
    (ws / "secret.IMG").write_bytes((ws / EDR).read_bytes())
    (ws / "secret_urls.txt").write_text("http://127.0.0.1/x\n")
    (ws / "secret_pairs.txt").write_text(f"{EDR[:-4]} {EDR[:-4]}\n")
    for name in ("secret.IMG", "secret_urls.txt", "secret_pairs.txt"):
        os.chmod(ws / name, 0o000)
    (ws / "readonly").mkdir(mode=0o555)
    os.chmod(ws / "readonly", 0o555)
    prefix = _without_dac_override()
    probe = subprocess.run([*prefix, "cat", str(ws / "secret.IMG")], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("this process cannot drop its permission to read every file")
    yield ws, prefix
    for name in ("secret.IMG", "secret_urls.txt", "secret_pairs.txt"):
        os.chmod(ws / name, 0o644)


@pytest.mark.parametrize("argv, names", [
    (("info", "secret.IMG"), "secret.IMG"),
    (("validate", "secret.IMG"), "secret.IMG"),
    (("calibrate", "secret.IMG", "out.cub"), "secret.IMG"),
    (("fetch", "P02_001981", "--urls", "secret_urls.txt"), "secret_urls.txt"),
    (("batch", "secret_pairs.txt", "--out", "o", "--edr-dir", "."), "secret_pairs.txt"),
    (("calibrate", EDR, "readonly/out.cub"), "readonly/out.cub"),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_unreadable_inputs_and_unwritable_folders(locked, argv, names):
    ws, prefix = locked
    result = subprocess.run([*prefix, sys.executable, "-m", "ctxdask", *argv], cwd=ws, capture_output=True,
                            text=True, timeout=240, stdin=subprocess.DEVNULL)
    both = result.stdout + result.stderr
    assert "Traceback" not in both, both
    assert result.returncode == 1, both
    if argv[0] == "validate":  # the report is its result: the file, then its findings
        assert f"{names}: INVALID" in result.stdout and "file: permission denied" in result.stdout, both
    else:
        assert any(names in line and "permission denied" in line for line in result.stderr.splitlines()), both
