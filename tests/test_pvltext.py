"""ctxdask.pvltext parses PVL exactly as pvl.loads does, without pvl's date tries on every word."""

from __future__ import annotations

import datetime

import pvl
import pytest

from ctxdask import pvltext
from ctxdask.io.isis_read import read_label_text

TRICKY = """\
PDS_VERSION_ID = PDS3
START_TIME = 2009-06-01T00:38:16.057
STOP_TIME = 2009-06-01T00:39:02.180Z
ORDINAL_TIME = 2009-152T00:38:16
PRODUCT_CREATION_DATE = 2009-12-02
ORDINAL_DATE = 2009-336
LOCAL_TIME = 13:05
LEAP = 2008-12-31T23:59:60
SPACECRAFT_CLOCK_START_COUNT = "0928283918:060"
UNQUOTED_CLOCK = 0928283918:060
WORD = MRO
DIGITS_FIRST = 2X_TEST
NEGATIVE = -5
REAL = -1.5E3
HEX = 16#FF#
WITH_UNITS = 6.1 <M>
SET = {A, B}
SEQUENCE = (1, 2009-06-01, 12:00:00, -3, N/A)
MISSING = "N/A"
END
"""


def test_the_same_values_as_pvl_on_tricky_text():
    fast, plain = pvltext.loads(TRICKY), pvl.loads(TRICKY)
    assert fast == plain and repr(fast) == repr(plain)
    assert fast["START_TIME"] == datetime.datetime(2009, 6, 1, 0, 38, 16, 57000, tzinfo=datetime.timezone.utc)
    assert fast["ORDINAL_DATE"] == datetime.date(2009, 12, 2)
    assert fast["LOCAL_TIME"] == datetime.time(13, 5, tzinfo=datetime.timezone.utc)
    assert fast["LEAP"] == "2008-12-31T23:59:60"  # pvl's leap-second rule: kept as text
    assert fast["DIGITS_FIRST"] == "2X_TEST" and fast["NEGATIVE"] == -5 and fast["HEX"] == 255


def test_the_same_values_as_pvl_on_real_labels(reference_dir):
    texts = [read_label_text(reference_dir / "isis" / "ctxTestImage.cub")]
    texts += [p.read_text(errors="replace") for p in sorted((reference_dir / "labels").glob("*.lbl"))]
    for text in texts:
        assert repr(pvltext.loads(text)) == repr(pvl.loads(text))


def _outcome(parse, text):
    try:
        return repr(parse(text))
    except Exception as exc:  # noqa: BLE001 - the kind of failure is what is compared
        return type(exc)


@pytest.mark.parametrize("text", ["A = (1, 2", "A = 1\nB = \nEND", "GROUP = X\nEND_OBJECT = X\nEND", "= 5\nEND",
                                  "A = 2009-13-45\nEND", "A = 25:61\nEND"])
def test_malformed_text_ends_as_with_pvl(text):
    assert _outcome(pvltext.loads, text) == _outcome(pvl.loads, text)
