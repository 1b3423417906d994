"""How ASP programs find a camera's bundle adjustment (``--bundle-adjust-prefix``), for the stand-ins.

NOT THE REAL PROGRAMS. NeoGeographyToolkit/StereoPipeline at 55bf46022:

``bundle_adjust_file_name`` (src/asp/Core/BaseCameraUtils.cc:34-57)
    ``<prefix>-<name>.adjust``, the name being the camera file's base name (the
    image's when the camera is empty: an ISIS cube carries its camera) up to its
    *last* dot: ``ba/run`` and ``dir/P02_..._XI_02N356W.cal.cub`` give
    ``ba/run-P02_..._XI_02N356W.cal.adjust``.
``load_adjusted_model`` (:62-137)
    With a prefix, the file above; when it does not exist and the image is a
    map-projected one, the name is made again from the ``INPUT_IMAGE_FILE`` and
    ``CAMERA_FILE`` its geoheader records (:94-107); still missing is
    ``InputErr "Missing adjusted camera model: <file>."`` (:109-110), which
    ``ASP_STANDARD_CATCHES`` prints on stderr with exit 1 (src/asp/Core/Macros.h:29-31).
``read_adjustments`` / ``write_adjustments`` (:141-182)
    Two lines: the translation ``x y z`` (metres), then the rotation quaternion
    ``w x y z`` (17 significant digits, a trailing space after the quaternion);
    an unreadable file is ``ArgumentErr "Failed to read adjustments from: <file>."``.
"""

from __future__ import annotations

import os
import sys


class MissingAdjustment(Exception):
    """``vw::InputErr`` of ``load_adjusted_model``: no ``.adjust`` file where the program looks."""


def file_name(prefix: str, image: str, camera: str = "") -> str:
    """``asp::bundle_adjust_file_name``."""
    name = os.path.basename(camera or image)
    dot = name.rfind(".")
    return f"{prefix}-{name[:dot] if dot >= 0 else name}.adjust"


def write(path: str, translation, quaternion) -> None:
    """``asp::write_adjustments``: translation, then ``w x y z`` (precision 17)."""
    with open(path, "w") as f:
        f.write(" ".join(f"{v:.17g}" for v in translation) + "\n")
        f.write(" ".join(f"{v:.17g}" for v in quaternion) + " \n")


def read(path: str) -> tuple[list[float], list[float]]:
    """``asp::read_adjustments``: (translation, quaternion)."""
    try:
        with open(path) as f:
            values = [float(v) for v in f.read().split()]
    except (OSError, ValueError):
        values = []
    if len(values) < 7:
        print(f"\n\nERROR: Failed to read adjustments from: {path}.\n\n", flush=True)
        sys.exit(1)
    return values[:3], values[3:7]


def resolve(prefix: str, image: str, camera: str = "", header: dict | None = None) -> str:
    """The ``.adjust`` file ``load_adjusted_model`` reads for this image and camera.

    ``header`` is the geoheader of a map-projected ``image`` (``INPUT_IMAGE_FILE``,
    ``CAMERA_FILE``), if any.

    Raises
    ------
    MissingAdjustment
        Neither name exists.
    """
    path = file_name(prefix, image, camera)
    if not os.path.exists(path) and header and header.get("INPUT_IMAGE_FILE"):
        path = file_name(prefix, header["INPUT_IMAGE_FILE"], header.get("CAMERA_FILE", ""))
    if not os.path.exists(path):
        raise MissingAdjustment(f"Missing adjusted camera model: {path}.")
    return path


def load(prefix: str, image: str, camera: str = "", header: dict | None = None):
    """``load_adjusted_model`` outside any ``try``: the adjustment, or the program stops as ASP's does."""
    try:
        path = resolve(prefix, image, camera, header)
    except MissingAdjustment as exc:
        print(f"\n\nERROR: {exc}\n\n", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"Using adjusted camera model: {path}", flush=True)
    return read(path)
