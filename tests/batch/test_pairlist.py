"""Pair lists: the real list, CSV, comments, bad ids, duplicates, order."""

from __future__ import annotations

import pytest

from ctxdask.batch.pairlist import EmptyPairListError, Pair, parse_pairs, read_pairs

A, B, C = "B01_009855_2626_XN_82N094W", "B01_010106_2627_XN_82N094W", "B01_009894_1665_XI_13S042W"


def test_real_list_rejects_the_two_m_lines(reference_dir):
    pl = read_pairs(reference_dir / "pairs" / "CTX_stereo_pair.txt")
    assert len(pl.pairs) == 1540 and len(pl.images) == 2524
    assert [(r.line, r.text) for r in pl.rejected] == [(1209, "M"), (1210, "M")]
    assert pl.pairs[0] == Pair(A, B, 1)
    assert pl.pairs[-1].line == 1542  # line numbers count the rejected lines too


def test_comments_blanks_case_and_order():
    text = f"# a list\n\n{B.lower()} {A}   # inline comment\n\t\n{C} {A}\n"
    pl = parse_pairs(text.splitlines(True))
    assert [(p.left, p.right, p.line) for p in pl.pairs] == [(B, A, 3), (C, A, 5)]
    assert pl.images == [B, A, C] and not pl.rejected


@pytest.mark.parametrize("bad", [
    "B01_009855_2626_XN_82N094W;rm", "../B01_009855_2626_XN_82N094W", "B01_009855/2626_XN_82N094W",
    "$(reboot)", "B01_009855_2626_XN_82N094W`x`", "..", "B01_009855",
])
def test_unsafe_ids_are_rejected_with_line_numbers(bad):
    pl = parse_pairs([f"{A} {B}\n", f"{A} {bad}\n", f"{C} {B}\n"])
    assert [p.line for p in pl.pairs] == [1, 3]
    assert len(pl.rejected) == 1 and pl.rejected[0].line == 2
    assert "not a CTX product id" in pl.rejected[0].reason


def test_duplicates_and_self_pairs_dropped_first_wins():
    pl = parse_pairs([f"{A} {B}\n", f"{A} {B}\n", f"{B} {A}\n", f"{C} {C}\n", f"{A} {B} {C}\n"])
    assert [p.line for p in pl.pairs] == [1]
    reasons = {r.line: r.reason for r in pl.rejected}
    assert "duplicate of the pair on line 1" in reasons[2] and "line 1" in reasons[3]
    assert "two different images" in reasons[4] and "found 3 fields" in reasons[5]


def test_csv_with_header_names_the_columns():
    pl = parse_pairs(["overlap,right,left\n", f"0.5,{B},{A}\n", f"0.7, {C} ,{A}\n", "0.1,M\n"])
    assert [(p.left, p.right) for p in pl.pairs] == [(A, B), (A, C)]
    assert pl.rejected[0].line == 4


def test_csv_without_header_uses_first_two_columns():
    pl = parse_pairs([f"{A},{B},x\n", f"{C},{B}\n"])
    assert [(p.left, p.right) for p in pl.pairs] == [(A, B), (C, B)]


def test_pairs_from_code_are_checked_too():
    pl = read_pairs([(A, B), (A, "x; rm -rf /"), (B, C, A)])
    assert [p.pair_id for p in pl.pairs] == [f"{A}-{B}"]
    assert [r.line for r in pl.rejected] == [2, 3]
    assert read_pairs(pl) is pl


def test_non_ascii_digits_are_rejected_on_their_line(tmp_path):
    wide = "B01_００９８５５_2626_XN_82N094W"
    pl = parse_pairs([f"{A} {B}\n", f"{wide} {C}\n", f"{C} {B}\n"], source="pairs.txt")
    assert [p.line for p in pl.pairs] == [1, 3]
    assert [r.line for r in pl.rejected] == [2] and "only ASCII" in pl.rejected[0].reason


def test_a_byte_order_mark_is_not_part_of_the_first_id(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_bytes(b"\xef\xbb\xbf" + f"{A} {B}\r\n{C} {A}\r\n".encode())
    pl = read_pairs(path)
    assert [(p.left, p.line) for p in pl.pairs] == [(A, 1), (C, 2)] and not pl.rejected
    assert parse_pairs([f"\ufeff{A} {B}\n"]).pairs[0].left == A
    # undecodable bytes reject their line only
    path.write_bytes(f"{A} {B}\n".encode() + b"B01_\xff\xfe_2626_XN_82N094W " + C.encode() + b"\n")
    pl = read_pairs(path)
    assert len(pl.pairs) == 1 and [r.line for r in pl.rejected] == [2]


@pytest.mark.parametrize("text, match", [
    ("", "no stereo pairs in the list"),
    ("# only a comment\n\n", "no stereo pairs in the list"),
    ("M\nB01_００９８５５_2626_XN_82N094W B01_010106_2627_XN_82N094W\n", r"all 2 lines were rejected: line 1: .*line 2:"),
])
def test_a_list_without_usable_pairs_is_an_error_with_the_reasons(tmp_path, text, match):
    path = tmp_path / "pairs.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(EmptyPairListError, match=match) as info:
        read_pairs(path).require_pairs()
    assert str(info.value).startswith(str(path))
