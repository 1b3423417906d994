"""Product id -> URL (index, URL list) and the ``ctxdask fetch`` / ``ctxdask pairs`` commands."""

from __future__ import annotations

import pytest
from cumindex import default_row, write_cumindex

from ctxdask.catalog import AmbiguousProductIdError, CatalogError, ProductLocator, ProductNotFoundError, product_url
from ctxdask.cli import main
from ctxdask.product_id import InvalidProductIdError

BASE = "https://pds.example.org/ctx"
PIDS = ["T01_000801_1353_XN_44S195W", "T01_000801_1867_XN_06N202W", "B01_009855_2626_XN_82N094W"]


@pytest.fixture
def index_label(tmp_path):
    rows = [default_row(PIDS[0]), default_row(PIDS[1], VOLUME_ID="MROX_0003"),
            default_row(PIDS[2], VOLUME_ID="MROX_0042"),
            default_row("T01_000802_1412_XN_38S223W", FILE_SPECIFICATION_NAME="../../etc/passwd")]
    return write_cumindex(tmp_path / "index", rows)


def test_product_url_forms():
    assert product_url("MROX_0001", "DATA/P01_001472_1747_XI_05S146W.IMG", base=BASE + "/") == (
        f"{BASE}/mrox_0001/data/P01_001472_1747_XI_05S146W.IMG")
    assert product_url("MROX_0001", "DATA/X.IMG", base=BASE, lowercase_dirs=False) == f"{BASE}/MROX_0001/DATA/X.IMG"
    for volume, spec in [("MROX_0001", "../X.IMG"), ("MROX_0001", "/DATA/X.IMG"), ("MROX/../1", "DATA/X.IMG"),
                         ("MROX_0001", "DATA//X.IMG"), ("MROX_0001", "DATA/X.IMG?x=1")]:
        with pytest.raises(CatalogError):
            product_url(volume, spec, base=BASE)


def test_locator_from_index(index_label):
    loc = ProductLocator.from_index(index_label, base=BASE)
    assert len(loc) == 3 and loc.url(PIDS[1]) == f"{BASE}/mrox_0003/data/{PIDS[1]}.IMG"
    assert loc["b01_009855"] == f"{BASE}/mrox_0042/data/{PIDS[2]}.IMG"  # unique short id
    assert [b.line for b in loc.skipped] == [4] and "plain relative path" in loc.skipped[0].reason
    with pytest.raises(AmbiguousProductIdError, match=f"T01_000801 matches 2 products: {PIDS[0]}, {PIDS[1]}"):
        loc.url("T01_000801")
    with pytest.raises(ProductNotFoundError, match="not listed"):
        loc.url("P01_001472_1747_XI_05S146W")
    with pytest.raises(InvalidProductIdError):
        loc.url("../etc/passwd")
    assert PIDS[0] in loc and "T01_000801" not in loc and "junk" not in loc


def test_locator_from_url_list(tmp_path):
    listing = tmp_path / "urls.txt"
    listing.write_text(
        "# CTX EDRs\n"
        f"{BASE}/mrox_0001/data/{PIDS[0]}.IMG\n"
        "\n"
        "not a url\n"
        f"{BASE}/mrox_0001/data/README.TXT\n"
        f"https://other.example.org/x/{PIDS[2].lower()}.img  # mixed case\n"
    )
    loc = ProductLocator.from_url_list(listing)
    assert loc.url(PIDS[2]) == f"https://other.example.org/x/{PIDS[2].lower()}.img"
    assert [(b.line, b.reason.split(":")[0]) for b in loc.skipped] == [(4, "not an http(s) or ftp URL"),
                                                                        (5, "'README' is not a CTX product id of the form PPP_NNNNNN_TTTT_XX_AAHBBBW (e.g. B10_013341_1010_XN_79S172W)")]
    assert loc.to_dict() == {PIDS[0]: f"{BASE}/mrox_0001/data/{PIDS[0]}.IMG",
                             PIDS[2]: f"https://other.example.org/x/{PIDS[2].lower()}.img"}


def test_fetch_command(fault_server, edr_bytes, tmp_path, capsys):
    import dask.config

    pid_ok, pid_missing = "P01_001472_1747_XI_05S146W", "P01_001473_2479_XI_67N185W"
    fault_server.add(f"mrox_0001/data/{pid_ok}.IMG", edr_bytes[pid_ok])
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{fault_server.base_url}/mrox_0001/data/{pid_ok}.IMG\n"
                       f"{fault_server.base_url}/mrox_0001/data/{pid_missing}.IMG\n")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"{pid_ok} {pid_missing}\njunk line\n")
    cache = tmp_path / "cache"
    with dask.config.set({"ctxdask.catalog.download.backoff": 0.01, "ctxdask.catalog.download.retries": 1,
                          "ctxdask.catalog.download.requests-per-second": 100}):
        code = main(["fetch", pid_ok, "--list", str(pairs), "--urls", str(listing), "--to", str(cache)])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"{pid_ok}: downloaded (1 requests)" in out and "1 in the cache, 1 failed" in out
    assert "FAILED" in err and "404" in err and "FAILED" not in out  # failures on stderr, where errors go
    assert f"{pairs}:2" in err  # the junk line, with its line number
    assert (cache / f"{pid_ok}.IMG").read_bytes() == edr_bytes[pid_ok]

    assert main(["fetch", pid_ok, "--urls", str(listing), "--to", str(cache)]) == 0
    assert f"{pid_ok}: cached" in capsys.readouterr().out


def test_pairs_command(tmp_path, capsys):
    from test_pairs import A, B, C, _scene

    rows = [default_row(r["PRODUCT_ID"], **{k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()})
            for r in _scene()]
    label = write_cumindex(tmp_path / "index", rows)
    out = tmp_path / "pairs.txt"
    assert main(["pairs", str(label), "--out", str(out), "--bbox", "139", "-6", "141", "-4"]) == 0
    assert out.read_text() == f"{A} {B}\n{C} {A}\n"
    assert (tmp_path / "pairs.csv").exists()
    assert "2 pairs" in capsys.readouterr().out
    assert main(["pairs", str(label), "--out", str(out), "--min-overlap", "0.7"]) == 0
    assert out.read_text() == f"{A} {B}\n"
    capsys.readouterr()
    # no pair: the output says which criterion left none
    assert main(["pairs", str(label), "--out", str(out), "--min-overlap", "0.99", "--max-emission", "0.5"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("0 pairs") and out.read_text() == ""
    assert "by each criterion on its own" in text and "max-emission" in text, text
    assert main(["pairs", str(tmp_path / "missing.lbl"), "--out", str(out)]) == 1
