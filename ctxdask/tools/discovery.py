"""Find the ISIS and ASP programs a worker can run, and their versions."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping

from ctxdask.exceptions import ToolError
from ctxdask.tools.runner import run

__all__ = ["ISIS_PROGRAMS", "ASP_PROGRAMS", "ProgramInfo", "IsisEnvironment", "find_program",
           "isis_environment", "survey"]

#: ISIS applications of the CTX chain, and those cam2map4stereo.py calls
ISIS_PROGRAMS = ("mroctx2isis", "spiceinit", "ctxcal", "ctxevenodd", "cam2map", "camrange", "getkey")
#: ASP programs of the CTX chain (the monolithic stereo, then the tiled one of ASP 3.7+)
ASP_PROGRAMS = ("cam2map4stereo.py", "parallel_stereo", "point2dem", "pc_align", "dem_geoid", "bundle_adjust",
                "mapproject", "mapproject_single", "stereo_parse", "stereo_pprc", "stereo_tile", "dem_mosaic")
#: ASP programs that answer --version
_ASP_VERSIONED = {"parallel_stereo", "point2dem", "pc_align", "dem_geoid", "stereo_tile", "dem_mosaic", "bundle_adjust"}


@dataclasses.dataclass(frozen=True)
class ProgramInfo:
    """One program as found on ``PATH``.

    ``standin`` is true for ctxdask's test stand-ins (``tests/standins``),
    which must never be mistaken for the real programs.
    """

    name: str
    path: str | None
    version: str | None = None
    standin: bool = False
    problem: str | None = None

    @property
    def found(self) -> bool:
        """Whether the program is on PATH."""
        return self.path is not None


@dataclasses.dataclass(frozen=True)
class IsisEnvironment:
    """ISISROOT/ISISDATA as this process sees them."""

    isisroot: str | None
    isisdata: str | None
    version: str | None
    mro_data: bool

    @property
    def problems(self) -> list[str]:
        """What is wrong with the ISIS environment (ISISROOT, ISISDATA), one line each; empty when nothing."""
        out = []
        if not self.isisroot:
            out.append("ISISROOT is not set")
        elif not os.path.isdir(self.isisroot):
            out.append(f"ISISROOT {self.isisroot} does not exist")
        if not self.isisdata:
            out.append("ISISDATA is not set (spiceinit needs kernels, ctxcal its flat field)")
        elif not os.path.isdir(self.isisdata):
            out.append(f"ISISDATA {self.isisdata} does not exist")
        elif not self.mro_data:
            out.append("ISISDATA has no mro/ folder: spiceinit needs web=yes and ctxcal its flat")
        return out


def _is_standin(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return b"stand-in" in head.lower() and b"ctxdask" in head.lower()


def _asp_version(name: str, env: Mapping[str, str] | None, timeout: float) -> tuple[str | None, str | None]:
    with tempfile.TemporaryDirectory(prefix="ctxdask-doctor-") as tmp:
        try:
            result = run([name, "--version"], tmp, timeout, env=env, log="version.log", grace=1,
                         poll_interval=0.05, check=False)
        except ToolError as exc:
            return None, exc.reason.splitlines()[0]
        lines = [ln.strip() for ln in result.log_tail.splitlines()
                 if ln.strip() and not ln.startswith("# ctxdask")]
    if result.returncode != 0 or not lines:
        return None, f"`{name} --version` exited {result.returncode}"
    return lines[0], None


def find_program(name: str, env: Mapping[str, str] | None = None, *, isis_version: str | None = None,
                 timeout: float = 30.0) -> ProgramInfo:
    """Locate ``name`` on ``PATH`` and find its version.

    ASP programs are asked with ``--version`` (under a deadline); ISIS
    applications report the ISIS version from ``$ISISROOT/isis_version.txt``.
    """
    path_var = (env or os.environ).get("PATH", os.defpath)
    path = shutil.which(name, path=path_var)
    if path is None:
        return ProgramInfo(name, None)
    standin = _is_standin(path)
    version = problem = None
    if name in _ASP_VERSIONED:
        version, problem = _asp_version(name, env, timeout)
    elif name in ISIS_PROGRAMS and isis_version:
        version = f"ISIS {isis_version}"
    if standin:
        version = "ctxdask test stand-in (NOT the real program)"
    return ProgramInfo(name, path, version, standin, problem)


def _isis_version(isisroot: str | None) -> str | None:
    if not isisroot:
        return None
    try:
        with open(os.path.join(isisroot, "isis_version.txt"), encoding="utf-8") as f:
            first = f.readline()
    except OSError:
        return None
    return re.sub(r"#.*", "", first).strip() or None


def isis_environment(env: Mapping[str, str] | None = None) -> IsisEnvironment:
    """Read ISISROOT, ISISDATA and the ISIS version."""
    env = env if env is not None else os.environ
    root, data = env.get("ISISROOT") or None, env.get("ISISDATA") or None
    mro = bool(data) and os.path.isdir(os.path.join(data, "mro"))
    return IsisEnvironment(root, data, _isis_version(root), mro)


def survey(names: Iterable[str] = ISIS_PROGRAMS + ASP_PROGRAMS,
           env: Mapping[str, str] | None = None) -> tuple[dict[str, ProgramInfo], IsisEnvironment]:
    """Find every program in ``names``; return (name -> ProgramInfo, ISIS environment)."""
    isis = isis_environment(env)
    programs = {n: find_program(n, env, isis_version=isis.version) for n in names}
    return programs, isis
