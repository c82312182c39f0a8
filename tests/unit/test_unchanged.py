"""The gate's "unchanged" verdict (issue 17, item 6): a rebuild whose revision and OS packages
match what is promoted is not promoted again; anything else, or anything unreadable, is."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from typing import Any, cast

from aibase.registry.client import RegistryClient
from aibase.registry.oci import Manifest
from aibase.release.unchanged import OS_PACKAGES, compare_indexes, read_os_packages

from .test_verify import REV, image, index_of

LIST = "bash 5.2.15-2+b7 amd64\ngcc 4:12.2.0-3 amd64\n"


def _pair(*, size: int, labels: dict[str, str] | None = None) -> Any:
    return index_of(
        ("amd64", image("amd64", size=size, labels=labels)), ("arm64", image("arm64", size=size))
    )


def _reader(lists: dict[int, str | None]) -> Any:
    """OS package lists by the image's layer size (what tells the fake images apart)."""
    return lambda m: lists[m.json["layers"][0]["size"]]


def test_same_revision_and_packages_on_every_platform_is_unchanged() -> None:
    new, old = _pair(size=1), _pair(size=2)
    assert new.index.digest != old.index.digest
    verdict = compare_indexes(new, old, _reader({1: LIST, 2: LIST}))
    assert verdict.unchanged, verdict
    assert verdict.promoted == old.index.digest
    assert "linux/amd64, linux/arm64" in verdict.reason


def test_an_os_package_update_is_a_change_and_named() -> None:
    newer = LIST.replace("bash 5.2.15-2+b7", "bash 5.2.15-2+b8")
    verdict = compare_indexes(_pair(size=1), _pair(size=2), _reader({1: newer, 2: LIST}))
    assert not verdict.unchanged
    assert (
        "+bash 5.2.15-2+b8 amd64" in verdict.reason and "-bash 5.2.15-2+b7 amd64" in verdict.reason
    )


def test_another_revision_is_a_change_even_with_the_same_packages() -> None:
    labels = {"org.opencontainers.image.revision": "e" * 40}
    verdict = compare_indexes(
        _pair(size=1, labels=labels), _pair(size=2), _reader({1: LIST, 2: LIST})
    )
    assert not verdict.unchanged
    assert f"revision {'e' * 40} vs promoted {REV}" in verdict.reason


def test_an_unreadable_list_on_either_side_is_a_change() -> None:
    for lists in ({1: None, 2: LIST}, {1: LIST, 2: None}):
        verdict = compare_indexes(_pair(size=1), _pair(size=2), _reader(lists))
        assert not verdict.unchanged and "no readable" in verdict.reason, lists


def test_other_platforms_are_a_change() -> None:
    one = index_of(("amd64", image("amd64", size=1)))
    verdict = compare_indexes(one, _pair(size=2), _reader({1: LIST, 2: LIST}))
    assert not verdict.unchanged and "platforms differ" in verdict.reason


def test_the_index_already_promoted_is_unchanged_without_reading_anything() -> None:
    same = _pair(size=1)
    verdict = compare_indexes(same, same, _reader({}))  # reading would raise KeyError
    assert verdict.unchanged and verdict.promoted == same.index.digest


class _Blobs:
    """A registry holding blobs, no more: records what was fetched."""

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs, self.fetched = blobs, list[str]()

    def get_blob(self, _repo: str, digest: str, **_limit: int) -> bytes:
        self.fetched.append(digest)
        return self.blobs[digest]


def _layer(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


def _image(*layers: tuple[str, int]) -> Manifest:
    body = {"layers": [{"digest": d, "size": s} for d, s in layers]}
    return Manifest(
        "sha256:m", "application/vnd.oci.image.manifest.v1+json", json.dumps(body).encode()
    )


def test_the_list_is_read_from_the_last_small_layers_only() -> None:
    blobs = _Blobs(
        {
            "sha256:report": _layer({"opt/ai-base/layers.txt": b"groups"}),
            "sha256:last": _layer({"opt/ai-base/": b"", OS_PACKAGES: LIST.encode()}),
            "sha256:zstd": b"\x28\xb5\x2f\xfd not a tar python can open",
        }
    )
    client = cast(RegistryClient, blobs)
    found = read_os_packages(
        client, "r", _image(("sha256:big", 3 << 20), ("sha256:report", 90), ("sha256:last", 80))
    )
    assert found == LIST
    assert blobs.fetched == ["sha256:last"]  # from the end; the big layer never fetched
    assert (
        read_os_packages(client, "r", _image(("sha256:big", 3 << 20), ("sha256:report", 9))) is None
    )
    assert read_os_packages(client, "r", _image(("sha256:zstd", 40))) is None
