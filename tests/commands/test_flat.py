"""``ctxdask flat``: EDRs or a batch's images -> monthly flats, a QA page, exit status."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctxdask.cli import main
from ctxdask.radiometry.flat import load_flat
from ctxdask.testing import known_flat, make_edr
from ctxdask.tracking import DEFAULT_NAME, TrackingDB

FLAT = known_flat(seed=2)


@pytest.fixture(scope="module")
def edrs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edr")
    june = [make_edr(folder / f"B{i:02d}_0133{i:02d}_1010_XN_79S172W.IMG", lines=384, flat=FLAT, seed=i,
                     start_time="2009-06-05T00:00:00") for i in range(3)]
    july = [make_edr(folder / f"B{i:02d}_0134{i:02d}_1010_XN_79S172W.IMG", lines=384, flat=FLAT, seed=10 + i,
                     start_time="2009-07-05T00:00:00") for i in range(2)]
    return folder, june, july


def test_by_month_writes_flats_and_a_page(edrs, tmp_path, capsys):
    folder, june, july = edrs
    out = tmp_path / "flats"
    code = main(["flat", *map(str, june + july), str(folder / "missing.IMG"), "--out", str(out), "--by", "month",
                 "--min-images", "3", "--format", "cub,npy"])
    captured = capsys.readouterr()
    text = captured.out
    assert code == 0
    assert "rejected " in captured.err and "missing.IMG" in captured.err and "no such file" in captured.err
    assert "flat 2009-06: 3 images, 1 rejected" in text and "flat 2009-07: 2 images, 1 rejected: no flat" in text
    assert sorted(p.name for p in out.iterdir()) == [
        "flat_2009-06.cub", "flat_2009-06.json", "flat_2009-06.npy", "flat_2009-06.png", "flat_2009-07.json",
        "index.html"]
    assert load_flat(out / "flat_2009-06.cub").values.shape == (5000,)
    assert json.loads((out / "flat_2009-07.json").read_text())["problem"].startswith("2 usable images")


def test_from_batch_reads_the_tracking_database(edrs, tmp_path, capsys):
    folder, june, july = edrs
    batch = tmp_path / "batch"
    batch.mkdir()
    (tmp_path / "f").mkdir()
    with TrackingDB(batch / DEFAULT_NAME) as db:
        db.register([], [p.stem for p in june + july])
    code = main(["flat", "--from-batch", str(batch), "--edr-dir", str(folder), "--out", str(tmp_path / "f" / "all"),
                 "--min-images", "4"])
    assert code == 0, capsys.readouterr()
    flat = np.load(tmp_path / "f" / "all.npy")
    assert np.sqrt(np.mean((flat / FLAT - 1) ** 2)) < 0.03  # five short images: a rough flat
    # one flat among other files: its page and plot are named after it, never a bare index.html
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == [
        "all.cub", "all.json", "all.npy", "all.qa.html", "all.qa_all.png", "all.tif"]
    # without --edr-dir: where the batch's run read its EDRs (recorded with the run)
    with TrackingDB(batch / DEFAULT_NAME) as db:
        db.end_run(db.start_run(pairs_file="pairs.txt", out=str(batch), settings={"edr_dir": str(folder)}), "done")
    assert main(["flat", "--from-batch", str(batch), "--out", str(tmp_path / "g"), "--min-images", "4",
                 "--format", "npy"]) == 0, capsys.readouterr()
    assert np.allclose(np.load(tmp_path / "g.npy"), flat)


def test_no_flat_at_all_is_exit_status_1_and_no_input_is_2(edrs, tmp_path, capsys):
    folder, june, _ = edrs
    assert main(["flat", str(june[0]), "--out", str(tmp_path / "x.v2"), "--min-images", "3"]) == 1
    assert (tmp_path / "x.v2.json").is_file()  # the record of why there is no flat
    assert main(["flat", "--out", str(tmp_path / "y")]) == 2  # a usage error, with the usage
    assert "usage: ctxdask flat" in capsys.readouterr().err
    assert main(["flat", "--from-batch", str(tmp_path), "--out", str(tmp_path / "z")]) == 1  # CTXError: one line
    assert "no batch tracking database" in capsys.readouterr().err
    # the output folder must exist before any work is done
    assert main(["flat", str(june[0]), "--out", str(tmp_path / "nodir" / "f")]) == 1
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "nodir").exists()


def test_partial_width_images_count_and_the_files_share_one_name(edrs, tmp_path, capsys):
    """Two full-width images are too few alone: the partial-width ones join them (own-median normalised)
    rather than vanish; --out NAME.cub names every file NAME.*, the page too."""
    folder, june, _ = edrs
    partial = [make_edr(tmp_path / f"B0{i}_0136{i:02d}_1010_XN_79S172W.IMG", lines=384, flat=FLAT, seed=20 + i,
                        first_pixel=first, line_samples=2048) for i, first in ((7, 480), (8, 2400))]
    code = main(["flat", *map(str, june[:2] + partial), "--out", str(tmp_path / "flat1.cub"), "--min-images", "3",
                 "--format", "cub"])
    text = capsys.readouterr().out
    assert code == 0 and "flat all: 4 images, 0 rejected" in text, text
    record = json.loads((tmp_path / "flat1.json").read_text())
    assert sorted(i["product_id"] for i in record["images"]) == sorted(p.stem for p in june[:2] + partial)
    assert any("too few for a flat" in note for note in record["notes"])
    assert sorted(p.name for p in tmp_path.glob("flat1*")) == ["flat1.cub", "flat1.json", "flat1.qa.html",
                                                                "flat1.qa_all.png"]
