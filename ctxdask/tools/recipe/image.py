"""The image stage: the steps run once per image, from the EDR to the level-1, spiceinit-ed cube.

ISIS (the ISIS application documentation)::

    mroctx2isis from=P.IMG to=P.cub
    spiceinit from=P.cub [web=yes]
    ctxcal from=P.cub to=P.cal.cub
    ctxevenodd from=P.cal.cub to=P.lev1eo.cub          (summing 1 only)

With ``tools.calibration: native`` the three ISIS calibration programs are
replaced by one native step (a Python callable, run in its own process under
the same deadline machinery) that writes the level-1 cube; ``spiceinit`` then
runs on that cube. The default callable also writes the image's quality
metrics and thumbnail in the same pass (outputs ``quality`` and ``thumbnail``).
"""

from __future__ import annotations

from ctxdask.settings import Settings, ToolsSettings
from ctxdask.tools.recipe.settings import step_resources, step_timeout
from ctxdask.tools.recipe.step import External, Input, Step, Upstream, flags

__all__ = ["EDR", "NATIVE_QUALITY_OUTPUTS", "image_stage", "isis_image_steps", "native_image_steps"]

#: the EDR path the caller gives to :meth:`~ctxdask.tools.recipe.Recipe.image_calls`
EDR = External("edr")
#: extra outputs of the default native calibration: per-image quality (ctxdask.quality)
NATIVE_QUALITY_OUTPUTS = {"quality": "{id}.quality.json", "thumbnail": "{id}.thumb.png"}


def _program(s: Settings, name: str, **fields) -> Step:
    """An image-scope program step named as its program, with its configured deadline and resources."""
    return Step(name=name, program=name, timeout=step_timeout(s, name),
                resources=step_resources(s, name), **fields)


def _spiceinit(s: Settings, cube: Input) -> Step:
    """``spiceinit`` on its own copy of ``cube`` (it writes the SPICE tables into the cube)."""
    web = ("web=yes",) if s.tools.isis.spiceinit_web else ()
    return _program(s, "spiceinit", args=("from={inputs[cube]}", *web),
                    inputs={"cube": cube}, outputs={"cube": cube.name}, copy_inputs=frozenset({"cube"}))


def native_image_steps(s: Settings) -> list[Step]:
    """The native calibration step, then ``spiceinit`` on its level-1 cube."""
    tools, flat = s.tools, s.flat.dir
    args: tuple[str, ...] = ("{inputs[edr]}", "{outputs[cube]}")
    outputs = {"cube": "{id}.cal.cub"}
    if tools.native_calibrate == ToolsSettings.native_calibrate:
        # the default callable (the yaml's) measures quality in the same pass over the EDR
        outputs.update(NATIVE_QUALITY_OUTPUTS)
        args += flags("outputs", NATIVE_QUALITY_OUTPUTS)
    calibrate = Step(
        name="calibrate", args=args, inputs={"edr": Input("{id}.IMG", EDR)}, outputs=outputs,
        timeout=step_timeout(s, "calibrate"), resources=step_resources(s, "calibrate"),
        kind="native", callable=tools.native_calibrate,
        # a flat folder reaches ctxdask.calibrate, which picks the image's month from it
        options={"even_odd": tools.even_odd, **({"flat": str(flat)} if flat else {})},
    )
    return [calibrate, _spiceinit(s, Input("{id}.cal.cub", Upstream("calibrate", "cube")))]


def isis_image_steps(s: Settings) -> list[Step]:
    """``mroctx2isis``, ``spiceinit``, ``ctxcal`` and ``ctxevenodd`` (skipped when rendered for summing 2)."""
    one_to_one = ("from={inputs[cube]}", "to={outputs[cube]}")
    return [
        _program(s, "mroctx2isis", args=("from={inputs[edr]}", "to={outputs[cube]}"),
                 inputs={"edr": Input("{id}.IMG", EDR)}, outputs={"cube": "{id}.cub"}),
        _spiceinit(s, Input("{id}.cub", Upstream("mroctx2isis", "cube"))),
        _program(s, "ctxcal", args=one_to_one, inputs={"cube": Input("{id}.cub", Upstream("spiceinit", "cube"))},
                 outputs={"cube": "{id}.cal.cub"}),
        _program(s, "ctxevenodd", args=one_to_one,
                 inputs={"cube": Input("{id}.cal.cub", Upstream("ctxcal", "cube"))},
                 outputs={"cube": "{id}.lev1eo.cub"}),
    ]


def image_stage(s: Settings) -> tuple[Step, ...]:
    """The image steps for the ``tools.calibration`` setting, in order."""
    return tuple(native_image_steps(s) if s.tools.calibration == "native" else isis_image_steps(s))
