"""``dem_mosaic --hole-fill-length`` for the test stand-in: which holes ASP fills, and a smooth fill.

NOT the real program. Which holes are filled follows VisionWorkbench at 813d981e, the library
``dem_mosaic`` calls (src/asp/Tools/dem_mosaic.cc:476-479 at ASP 55bf46022: ``fill_holes_grass`` of
the DEM masked by its no-data value):

- a hole is a connected set of no-data pixels, diagonal neighbours included
  (src/vw/Image/BlobIndex.cc:168, "9 connected");
- one wider or taller than the length is left as it is (``wipe_big_blobs``,
  src/vw/Image/BlobIndex.h:457-475);
- one whose one-pixel ring reaches outside the image is left as it is: only holes
  surrounded by valid pixels are filled (``InpaintTask``, src/vw/Image/InpaintView.h, "How do we
  want to handle spots on the edges?").

The filled values come from the same 8-neighbour kernel VW sweeps over a hole (weights 0.176765
on the diagonals, 0.073235 beside), started here from the mean of the hole's valid ring instead of
from whatever the masked pixels held: the stand-in's pixels are placeholders, only which pixels
become valid is part of the contract the tests check.
"""

from __future__ import annotations

import numpy as np

#: VW's inpainting kernel (InpaintView.h): diagonals 0.176765, edge neighbours 0.073235
_DIAGONAL, _BESIDE = 0.176765, 0.073235
_KERNEL = np.array([[_DIAGONAL, _BESIDE, _DIAGONAL], [_BESIDE, 0.0, _BESIDE], [_DIAGONAL, _BESIDE, _DIAGONAL]])


def fill_holes(data: np.ndarray, nodata: float, length: int) -> np.ndarray:
    """``data`` (2-D) with its holes of at most ``length`` x ``length`` pixels filled, not touching the edge."""
    from scipy import ndimage

    out = np.array(data, dtype="float64")
    invalid = out == nodata if not np.isnan(nodata) else np.isnan(out)
    labels, _ = ndimage.label(invalid, structure=np.ones((3, 3), dtype=bool))
    rows, cols = out.shape
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        height, width = box[0].stop - box[0].start, box[1].stop - box[1].start
        if height > length or width > length:
            continue
        if box[0].start == 0 or box[1].start == 0 or box[0].stop == rows or box[1].stop == cols:
            continue  # its ring would reach outside the image
        ring = (slice(box[0].start - 1, box[0].stop + 1), slice(box[1].start - 1, box[1].stop + 1))
        _fill_one(out[ring], labels[ring] == index, ~invalid[ring])
    return out.astype(data.dtype)


def _fill_one(patch: np.ndarray, hole: np.ndarray, valid: np.ndarray) -> None:
    """Fill ``patch[hole]`` in place by sweeps of VW's 8-neighbour kernel over the hole.

    The sweeps are simultaneous (Jacobi, vectorised) rather than VW's one pixel at a time in
    grassfire order, and at most 200: the stand-in's holes of up to 50 pixels would otherwise take
    minutes in Python, and the values are placeholders.
    """
    from scipy import ndimage

    distance = ndimage.distance_transform_cdt(hole, metric="chessboard")
    patch[hole] = patch[valid].mean()
    for _ in range(min(200, 10 * int(distance.max()) ** 2)):
        patch[hole] = ndimage.correlate(patch, _KERNEL, mode="nearest")[hole]
