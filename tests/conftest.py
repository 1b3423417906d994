"""Shared test fixtures."""

from __future__ import annotations

import pathlib

import pytest

#: public reference data (real CTX labels, an ISIS cube, a pair list) beside the project
REFERENCE = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> pathlib.Path:
    """The ``../shared/reference`` folder; tests using it skip when it is absent."""
    if not REFERENCE.is_dir():
        pytest.skip("../shared/reference is not beside the project")
    return REFERENCE
