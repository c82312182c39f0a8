"""imagesize.py: an image's layers applied in order, whiteouts included, counted."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from aibase.errors import BuildError
from aibase.tools.imagesize import measure


def _layer(entries: dict[str, int | None], *, gz: bool = True) -> bytes:
    """A layer blob: path -> size of a file of that many bytes, or None for a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, size in entries.items():
            info = tarfile.TarInfo(path)
            if size is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = size
                tar.addfile(info, io.BytesIO(b"x" * size))
    return gzip.compress(buf.getvalue()) if gz else buf.getvalue()


def test_files_shipped_once_are_all_payload() -> None:
    size = measure([_layer({"usr/": None, "usr/a": 100}), _layer({"opt/b": 50}, gz=False)])
    assert (size.uncompressed, size.payload, size.cache) == (150, 150, 0)
    assert size.ratio == 1.0 and size.compressed > 0


def test_replaced_deleted_and_hidden_files_cost_without_being_payload() -> None:
    size = measure(
        [
            _layer({"a": 100, "d/x": 30, "d/y": 20, "keep": 5, "e/z": 7}),
            _layer({"a": 10}),  # replaced: 100 bytes still ship in the first layer
            _layer({".wh.keep": 0, "d/.wh..wh..opq": 0, "d/new": 1, ".wh.e": 0}),
        ]
    )
    assert size.uncompressed == 100 + 30 + 20 + 5 + 7 + 10 + 1
    assert size.payload == 10 + 1  # a, d/new
    assert size.ratio == pytest.approx(173 / 11)


def test_caches_are_counted_apart() -> None:
    size = measure([_layer({"root/.cache/pip/wheel": 40, "var/lib/apt/lists/x": 2, "opt/a": 8})])
    assert (size.payload, size.cache) == (8, 42)


def test_a_zstd_layer_is_refused_by_name() -> None:
    with pytest.raises(BuildError, match="zstd layer"):
        measure([b"\x28\xb5\x2f\xfd" + b"\0" * 10])
