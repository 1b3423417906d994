"""External ISIS/ASP programs as dask tasks, and the CTX stereo recipe.

- :mod:`~ctxdask.tools.runner`: :func:`run` one program under a hard deadline
  (own session, log file, SIGTERM then SIGKILL of its whole process tree);
- :mod:`~ctxdask.tools.processes`: tracking and stopping that tree;
- :mod:`~ctxdask.tools.cancel`: how a running step learns its task was cancelled;
- :mod:`~ctxdask.tools.recipe`: the CTX chain as data (:func:`build_recipe`);
- :mod:`~ctxdask.tools.tasks`: steps as dask tasks (:func:`run_step`,
  :func:`step_graph`, :func:`submit_steps`);
- :mod:`~ctxdask.tools.outputs`: completeness checks of program outputs;
- :mod:`~ctxdask.tools.native`: native calibration as a recipe step;
- :mod:`~ctxdask.tools.discovery` and :mod:`~ctxdask.tools.doctor`: what is
  installed (``ctxdask doctor``).
"""

from __future__ import annotations

from ctxdask.extras import require

require("batch", "ctxdask.tools")

from ctxdask.tools.recipe import Recipe, Step, StepCall, build_recipe
from ctxdask.tools.runner import RunResult, run
from ctxdask.tools.tasks import RunOptions, StepResult, run_step, step_graph, submit_steps

__all__ = [
    "Recipe",
    "RunOptions",
    "RunResult",
    "Step",
    "StepCall",
    "StepResult",
    "build_recipe",
    "run",
    "run_step",
    "step_graph",
    "submit_steps",
]
