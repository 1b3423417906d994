"""Product ids are checked before they reach paths or command lines."""

from __future__ import annotations

import pytest

from ctxdask.product_id import InvalidProductIdError, check_product_id, is_product_id, normalize_product_id


@pytest.mark.parametrize("text", ["B10_013341_1010_XN_79S172W", "p01_001472_1747_xi_05s146w", " D10_031011_1864_XI_06N201W\n"])
def test_valid_ids_normalise_to_upper_case(text):
    assert normalize_product_id(text) == text.strip().upper()
    assert is_product_id(text.strip())


@pytest.mark.parametrize(
    "text",
    ["M", "", "B10_013341_1010_XN_79S172W; rm -rf /", "../../etc/passwd", "B10_013341_1010_XN_79S172W/..",
     "B10_013341_1010_XZ_79S172W", "B10_013341_1010_XN_79S172E", "$(reboot)", "B10_013341", "B10_0133411010XN79S172W"],
)
def test_invalid_ids_are_rejected_with_the_form(text):
    with pytest.raises(InvalidProductIdError, match="PPP_NNNNNN_TTTT_XX_AAHBBBW"):
        normalize_product_id(text, source="pairs.txt:3")


def test_short_form_on_request():
    assert normalize_product_id("b01_009855", allow_short=True) == "B01_009855"
    with pytest.raises(InvalidProductIdError):
        normalize_product_id("B01_009855")


@pytest.mark.parametrize("text", [
    "B01_００９８５５_2626_XN_82N094W",   # full-width digits: digits to str.isdigit and to \d
    "B01_٠٠٩٨٥٥_2626_XN_82N094W",         # Arabic-Indic digits
    "ﬀ1_009855_2626_XN_82N094W",          # a ligature that upper() turns into ASCII "FF"
    "B01_009855_2626_XN_82N094W\u3000",    # ideographic space: str.strip() would eat it
])
def test_only_ascii_is_an_id(text):
    assert not is_product_id(text)
    with pytest.raises(InvalidProductIdError, match="only ASCII"):
        normalize_product_id(text, source="pairs.txt:7")
    with pytest.raises(InvalidProductIdError):
        check_product_id(text)


def test_check_wants_the_normal_form_and_is_the_recipes_check():
    from ctxdask.tools import recipe

    assert recipe.check_product_id is check_product_id  # one function for the pair list and the recipe
    assert check_product_id("B10_013341_1010_XN_79S172W") == "B10_013341_1010_XN_79S172W"
    for text in ("b10_013341_1010_xn_79s172w", " B10_013341_1010_XN_79S172W"):
        with pytest.raises(InvalidProductIdError, match="normal form"):
            check_product_id(text)
