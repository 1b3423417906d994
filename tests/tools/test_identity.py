"""File identity by content (ctxdask.tools.identity): the same on every host, new when the bytes change."""

from __future__ import annotations

import os
import shutil

from ctxdask.tools import identity
from ctxdask.tools.identity import content_identity, file_sha256
from ctxdask.tools.recipe import StagedInput, StepCall
from ctxdask.tools.tasks import _resolve_inputs


def test_a_copy_elsewhere_with_another_time_has_the_same_identity(tmp_path):
    original = tmp_path / "host-a" / "mola.tif"
    original.parent.mkdir()
    original.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # spans blocks of the hash loop
    copy = tmp_path / "host-b" / "mola.tif"
    copy.parent.mkdir()
    shutil.copyfile(original, copy)
    os.utime(copy, ns=(1_000_000_000, 1_000_000_000))
    assert content_identity(original) == content_identity(copy)
    assert content_identity(original)["size"] == 3 * 1024 * 1024 + 17


def test_changed_bytes_are_seen_although_the_digest_is_remembered(tmp_path):
    path = tmp_path / "dem.tif"
    path.write_bytes(b"a" * 1000)
    first = file_sha256(path)
    calls = []
    real_sha256 = identity.hashlib.sha256

    def counting():
        calls.append(1)
        return real_sha256()

    identity.hashlib.sha256 = counting
    try:
        assert file_sha256(path) == first and calls == []  # unchanged: from memory, not read again
        path.write_bytes(b"b" * 1000)  # same size, new bytes (and a new modification time)
        os.utime(path, ns=(2_000_000_000, 2_000_000_000))
        assert file_sha256(path) != first and calls == [1]
    finally:
        identity.hashlib.sha256 = real_sha256


def test_a_file_input_is_fingerprinted_by_content_not_by_path(tmp_path):
    """A step reading a file every host keeps at its own path gets one fingerprint on all of them."""
    for host in ("a", "b"):
        (tmp_path / host).mkdir()
        (tmp_path / host / "lowres.tif").write_bytes(b"DEM" * 100)
    os.utime(tmp_path / "b" / "lowres.tif", ns=(3_000_000_000, 3_000_000_000))
    identities = []
    for host in ("a", "b"):
        call = StepCall(key="mapproject_grid-X", step="mapproject_grid", kind="program", argv=("x",),
                        inputs={"dem": StagedInput("lowres.tif", str(tmp_path / host / "lowres.tif"))},
                        outputs={}, timeout=1.0, resources={})
        identities.append(_resolve_inputs(call, {})[1])
    assert identities[0] == identities[1]
