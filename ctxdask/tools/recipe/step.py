"""A recipe step as a template, its inputs, and the call it renders to.

A :class:`Step` names its program, its argv template, its inputs and outputs
(file names relative to the step's work directory), its deadline and the dask
worker resources it needs. Each input says where its file comes from: an
:class:`Upstream` output of another step of the same scope, or an
:class:`External` file the caller gives (the EDR, the MOLA points, the image
cubes of a pair). :meth:`Step.render` fills the templates for concrete product
ids into a :class:`StepCall`, in which an upstream output is a :class:`Ref` to
the producing call's task key.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

__all__ = [
    "LEFT",
    "LOWRES",
    "LOWRES_DEM",
    "MOLA",
    "RIGHT",
    "External",
    "Input",
    "Ref",
    "StagedInput",
    "Step",
    "StepCall",
    "Upstream",
    "flags",
    "resolve_sources",
]


class Upstream(NamedTuple):
    """The ``role`` output of the step named ``step`` (same scope): ``Upstream("parallel_stereo", "pc")``."""

    step: str
    role: str

    def __str__(self) -> str:
        return f"{self.step}:{self.role}"


class External(NamedTuple):
    """A file the caller gives when rendering: ``edr``, ``mola``, ``lowres_dem``, or the ``left``/``right`` cube."""

    name: str

    def __str__(self) -> str:
        return self.name


#: the files the caller gives the pair steps: the image cubes, the MOLA points, the low-resolution DEM
LEFT, RIGHT, MOLA, LOWRES = External("left"), External("right"), External("mola"), External("lowres_dem")
#: the name of the low-resolution DEM in every pair step's work dir: mapproject records the DEM
#: argument as given (DEM_FILE) and stereo_parse/stereo_pprc/stereo_tile require their --dem to be that
#: same string (src/asp/Sessions/StereoSession.cc:148-160), so it is one relative name on every worker
LOWRES_DEM = "lowres-dem.tif"


class Input(NamedTuple):
    """One input of a step template: the file name it is staged under (a template) and its source."""

    name: str
    source: Upstream | External


@dataclasses.dataclass(frozen=True)
class Ref:
    """An output of another step: ``Ref("spiceinit-P02_001981_1823_XI_02N356W", "cube")``."""

    key: str
    role: str


@dataclasses.dataclass(frozen=True)
class StagedInput:
    """An input file placed in the step's work directory before the program runs.

    Attributes
    ----------
    name : str
        Path relative to the work dir under which the program sees it.
    source : str or Ref
        A file path given by the caller, or an output of an upstream step.
    copy : bool
        Copy instead of symlink: the program modifies it in place (``spiceinit``),
        and the upstream step's output must stay as it was (rerun safety).
    """

    name: str
    source: str | Ref
    copy: bool = False


@dataclasses.dataclass(frozen=True)
class StepCall:
    """One step rendered for concrete products: everything a worker needs (picklable).

    ``argv`` holds file names relative to the work dir; ``files`` are small text
    files (``stereo.default``) written there before the program starts.
    """

    key: str
    step: str
    kind: Literal["program", "native"]
    argv: tuple[str, ...]
    inputs: Mapping[str, StagedInput]
    outputs: Mapping[str, str]
    timeout: float
    resources: Mapping[str, float]
    files: Mapping[str, str] = dataclasses.field(default_factory=dict)
    callable: str | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    env: Mapping[str, str | None] = dataclasses.field(default_factory=dict)
    names: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def program(self) -> str:
        """The executable (for native steps, the callable's ``module:function``)."""
        return self.callable if self.kind == "native" else self.argv[0]

    @property
    def upstream(self) -> list[str]:
        """Keys of the steps whose outputs this one reads."""
        return sorted({i.source.key for i in self.inputs.values() if isinstance(i.source, Ref)})


@dataclasses.dataclass(frozen=True, kw_only=True)
class Step:
    """One step of the chain, as a template.

    Attributes
    ----------
    name : str
        Unique, dot-free (it is a settings key: ``tools.timeouts.<name>``).
    program : str or None
        Executable name; ``None`` for a native step.
    args : tuple of str
        Arguments after the program; ``str.format`` templates over ``id``,
        ``left``, ``right``, ``pair``, ``inputs[role]`` and ``outputs[role]``.
    inputs : mapping
        role -> :class:`Input` (file name template and source).
    outputs : mapping
        role -> file name template, relative to the work dir.
    timeout : float
        Default deadline in seconds.
    resources : mapping
        dask worker resources, e.g. ``{"stereo": 1}``.
    scope : {"image", "pair"}
    copy_inputs : frozenset
        Roles the program changes in place (staged as copies).
    files : mapping
        name -> content of small files written into the work dir.
    kind : {"program", "native"}
    callable : str, optional
        ``module:function`` of a native step.
    options : mapping
        Keyword arguments of the native callable.
    """

    name: str
    program: str | None = None
    args: tuple[str, ...] = ()
    inputs: Mapping[str, Input] = dataclasses.field(default_factory=dict)
    outputs: Mapping[str, str]
    timeout: float
    resources: Mapping[str, float] = dataclasses.field(default_factory=dict)
    scope: Literal["image", "pair"] = "image"
    copy_inputs: frozenset[str] = frozenset()
    files: Mapping[str, str] = dataclasses.field(default_factory=dict)
    kind: Literal["program", "native"] = "program"
    callable: str | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if "." in self.name or not self.name:
            raise ValueError(f"step name {self.name!r} must be non-empty and dot-free")
        if (self.kind == "native") != (self.callable is not None):
            raise ValueError(f"step {self.name}: a native step needs a callable, a program step none")

    def key_for(self, names: Mapping[str, str]) -> str:
        """Deterministic task key of this step for the given products."""
        if self.scope == "image":
            return f"{self.name}-{names['id']}"
        return f"{self.name}-{names['left']}-{names['right']}"

    def render(
        self,
        names: Mapping[str, str],
        sources: Mapping[str, str | Ref],
        *,
        env: Mapping[str, str | None] | None = None,
    ) -> StepCall:
        """Fill the templates; ``sources`` maps this step's input roles to paths or refs."""
        inputs = {
            role: StagedInput(name.format(**names), sources[role], copy=role in self.copy_inputs)
            for role, (name, _) in self.inputs.items()
        }
        outputs = {role: name.format(**names) for role, name in self.outputs.items()}
        fields = dict(names, inputs={r: i.name for r, i in inputs.items()}, outputs=outputs)
        args = tuple(a.format(**fields) for a in self.args)
        if self.kind == "native":
            # run in a fresh interpreter so the same deadline and kill machinery applies
            options = json.dumps(dict(self.options), sort_keys=True)
            argv = ("python", "-m", "ctxdask.tools.native", self.callable, *args,
                    "--options", options)
        else:
            argv = (self.program, *args)
        return StepCall(
            key=self.key_for(names),
            step=self.name,
            kind=self.kind,
            argv=argv,
            inputs=inputs,
            outputs=outputs,
            timeout=float(self.timeout),
            resources=dict(self.resources),
            files=dict(self.files),
            callable=self.callable,
            options=dict(self.options),
            env=dict(env or {}),
            names=dict(names),
        )


def flags(where: Literal["inputs", "outputs"], roles) -> tuple[str, ...]:
    """``--output role={where[role]}`` for each role: how a native callable is told its extra files."""
    return tuple(a for role in roles for a in ("--output", f"{role}={{{where}[{role}]}}"))


def resolve_sources(
    step: Step,
    keys: Mapping[str, str],
    external: Mapping[str, str | Ref | None],
) -> dict[str, str | Ref]:
    """The render sources of ``step``: upstream outputs as refs to their keys, external files as given.

    Parameters
    ----------
    keys : mapping
        Step name -> task key, for the steps of the same scope and products.
    external : mapping
        External name -> the path (or ref) the caller gave.
    """
    return {role: Ref(keys[src.step], src.role) if isinstance(src, Upstream) else external[src.name]
            for role, (_, src) in step.inputs.items()}
