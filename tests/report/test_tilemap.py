"""The tile map: the tile grid over the orthoimage, coloured by outcome."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from ctxdask.report.tilemap import OUTCOMES, draw_tile_map, tile_outcome


def test_outcome_classes():
    assert tile_outcome("done", 1) == "first" and tile_outcome("done", 3) == "retried"
    assert tile_outcome("timeout", 3) == "timeout" and tile_outcome("failed", 1) == "failed"
    assert tile_outcome("running", 1) == tile_outcome("interrupted", 2) == "pending"
    # done with the n-th fallback parameter set (tools.asp.tile-fallbacks): its own class, whatever the attempts
    assert tile_outcome("done", 2, 1) == "fallback1" and tile_outcome("done", 3, 2) == "fallback2"
    assert tile_outcome("failed", 3, 2) == "failed"


def test_tiles_done_with_a_fallback_set_are_coloured_by_set(tmp_path):
    tiles = [{"index": 0, "x": 0, "y": 0, "width": 16, "height": 16, "status": "done", "attempts": 1},
             {"index": 1, "x": 16, "y": 0, "width": 16, "height": 16, "status": "done", "attempts": 2,
              "param_set": 1, "param_label": "asp_sgm, corr-kernel 7 7"},
             {"index": 2, "x": 32, "y": 0, "width": 16, "height": 16, "status": "done", "attempts": 3,
              "param_set": 2, "param_label": "asp_bm, corr-kernel 35 35, subpixel-mode 3"}]
    png = draw_tile_map(tiles, tmp_path / "map.png", size=300)
    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    patches = [image[10 + 60: 10 + 90, 10 + 100 * i + 40: 10 + 100 * i + 80].reshape(-1, 3).mean(axis=0)
               for i in range(3)]
    assert np.argmax(patches[0]) == 1  # green: done with the configured options
    assert np.argmax(patches[1]) == 2 and np.argmax(patches[2]) == 1 and patches[2][2] > patches[2][0]  # purple, teal
    assert len({tuple(np.round(p)) for p in patches}) == 3


def test_tiles_coloured_by_outcome_over_the_orthoimage(tmp_path):
    # a 2 x 2 grid of 100 m tiles; the orthoimage covers all but tile 3, which failed (a hole)
    ortho = tmp_path / "out-DRG.tif"
    data = np.full((1, 20, 20), 0.5, dtype="float32")
    data[0, 10:, 10:] = -9999.0
    with rasterio.open(ortho, "w", driver="GTiff", width=20, height=20, count=1, dtype="float32",
                       crs="+proj=stere +R=3396190", transform=from_origin(0, 200, 10, 10), nodata=-9999.0) as dst:
        dst.write(data)
    tiles = [{"index": 0, "footprint": (0, 100, 100, 200), "status": "done", "attempts": 1},
             {"index": 1, "footprint": (100, 100, 200, 200), "status": "done", "attempts": 2},
             {"index": 2, "footprint": (0, 0, 100, 100), "status": "timeout", "attempts": 3},
             {"index": 3, "footprint": (100, 0, 200, 100), "status": "failed", "attempts": 1}]
    png = draw_tile_map(tiles, tmp_path / "map.png", ortho=ortho, size=200, title="pair: 2/4 tiles done")
    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert image.shape[1] == 220 and image.shape[0] > 220  # the legend is below the map

    def mean(x0, y0):  # a patch inside a tile, away from its label and outline
        return image[10 + y0 + 40: 10 + y0 + 80, 10 + x0 + 40: 10 + x0 + 80].reshape(-1, 3).mean(axis=0)

    for (x0, y0), outcome in (((0, 0), "first"), ((100, 0), "retried"), ((0, 100), "timeout")):
        colour = np.array(OUTCOMES[outcome][1])
        patch = mean(x0, y0)
        # the tile's colour shows through over the grey orthoimage: its strongest channel leads
        assert np.argmax(patch) == np.argmax(colour), (outcome, patch)
    failed = mean(100, 100)
    assert failed[0] > 200 and failed[1] < 200  # red (hatched) over the hole


def test_without_orthoimage_pixel_boxes_are_drawn(tmp_path):
    tiles = [{"index": i, "x": 16 * (i % 2), "y": 16 * (i // 2), "width": 16, "height": 16,
              "status": "done", "attempts": 1} for i in range(4)]
    png = draw_tile_map(tiles, tmp_path / "map.png", size=64)
    assert Image.open(png).size[0] == 84 and Image.open(png).size[1] > 84 + 28
    with pytest.raises(ValueError):
        draw_tile_map([], tmp_path / "empty.png")
