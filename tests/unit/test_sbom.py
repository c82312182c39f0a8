"""The SBOM's pure parts: reading what layers hold (whiteouts too), the CycloneDX document,
reading it back, comparing it with an image, and choosing which attached one to believe."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aibase.audit.contents import Contents, OsPackage, parse_metadata, read_layer, stack_layers
from aibase.audit.sbom import (
    BaseImage,
    ImageId,
    choose_sbom,
    compare_sbom,
    make_sbom,
    read_sbom,
    requirements_of,
    sbom_bytes,
)
from aibase.build.sbom import locked_hashes

from .attested import SITE, image_files, layer_tar

IMAGE = "sha256:" + "1" * 64
OTHER = "sha256:" + "2" * 64
BASE = BaseImage(
    "localhost:5000/mirror/library/python", "python:3.11-slim", "sha256:" + "b" * 64, "linux/amd64"
)
ID = ImageId(
    "localhost:5000/cerebral/ai-base", IMAGE, "linux/amd64", "f" * 40, "2026-11-27T06:00:00Z"
)


def contents_of(*layers: dict[str, str]) -> Contents:
    return stack_layers([read_layer(layer_tar(files)) for files in layers])


def test_a_layer_s_distributions_os_packages_and_release_are_read() -> None:
    files = image_files("amd64") | {
        f"{SITE}/numpy-1.26.4.dist-info/METADATA": "Name: numpy\nVersion: 1.26.4\n"
        "License: BSD-3-Clause\n",
        f"{SITE}/numpy-1.26.4.dist-info/WHEEL": "Tag: cp311-cp311-manylinux_2_17_x86_64\n",
        "usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO": "Name: six\nVersion: 1.16.0\n",
        f"{SITE}/loose-1.0.dist-info/WHEEL": "Tag: py3-none-any\n",  # no METADATA: not installed
        "opt/app/not-a-site/x-1.0.dist-info/METADATA": "Name: x\nVersion: 1.0\n",
    }
    contents = stack_layers([read_layer(layer_tar(files))])
    assert [(d.name, d.version) for d in contents.dists] == [
        ("fastapi", "0.115.0"),
        ("numpy", "1.26.4"),
        ("six", "1.16.0"),
    ]
    numpy = contents.dists[1]
    assert numpy.path == f"/{SITE}/numpy-1.26.4.dist-info"
    assert (numpy.licence, numpy.licence_name) == (None, "BSD-3-Clause")
    assert numpy.wheel_tag == "cp311-cp311-manylinux_2_17_x86_64"
    assert contents.os_packages == (OsPackage("libc6", "2.36", "amd64"),)
    assert contents.os_id == "debian 12"


def test_whiteouts_remove_what_lower_layers_installed() -> None:
    """A later layer that uninstalls (a whiteout of the dist-info directory, or an opaque
    site-packages) takes the distribution out; dpkg's status is the top layer's."""
    base = image_files("amd64") | {
        f"{SITE}/six-1.16.0.dist-info/METADATA": "Name: six\nVersion: 1.16.0\n"
    }
    removed = {f"{SITE}/.wh.six-1.16.0.dist-info": ""}
    assert [d.name for d in contents_of(base, removed).dists] == ["fastapi"]
    opaque = {
        f"{SITE}/.wh..wh..opq": "",
        f"{SITE}/h11-0.16.0.dist-info/METADATA": "Name: h11\nVersion: 0.16.0\n",
    }
    assert [d.name for d in contents_of(base, opaque).dists] == ["h11"]
    newer = {
        "var/lib/dpkg/status": "Package: curl\nStatus: install ok installed\nVersion: 8\n"
        "Architecture: amd64\n\nPackage: gone\nStatus: deinstall ok config-files\n"
        "Version: 1\nArchitecture: amd64\n"
    }
    assert [p.name for p in contents_of(base, newer).os_packages] == ["curl"]


def test_the_licence_comes_from_the_expression_else_the_field_else_the_classifiers() -> None:
    assert parse_metadata("Name: a\nVersion: 1\nLicense-Expression: MIT OR Apache-2.0\n")[2:] == (
        "MIT OR Apache-2.0",
        None,
    )
    whole_text = "Name: a\nVersion: 1\nLicense: Copyright (c) 2024\n        all rights...\n"
    classified = whole_text + "Classifier: License :: OSI Approved :: MIT License\n"
    assert parse_metadata(classified)[2:] == (None, "MIT License")
    assert parse_metadata("Name: a\nVersion: 1\nLicense: UNKNOWN\n")[2:] == (None, None)


def _sbom(files: dict[str, str] | None = None, image: ImageId = ID) -> dict[str, Any]:
    contents = stack_layers([read_layer(layer_tar(files or image_files("amd64")))])
    lock = locked_hashes(
        "fastapi==0.115.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via -r x.in\n"
        "h11==0.16.0 \\\n    --hash=sha256:"
        + "c" * 64
        + " \\\n    --hash=sha256:"
        + "d" * 64
        + "\n"
    )
    return make_sbom(contents, image, lock, BASE)


def test_the_cyclonedx_document_lists_what_is_installed_with_hashes_licences_and_the_base() -> None:
    doc = _sbom(
        image_files("amd64")
        | {f"{SITE}/h11-0.16.0.dist-info/METADATA": "Name: h11\nVersion: 0.16.0\n"}
    )
    assert (doc["bomFormat"], doc["specVersion"]) == ("CycloneDX", "1.5")
    image = doc["metadata"]["component"]
    assert image["version"] == IMAGE and image["hashes"] == [
        {"alg": "SHA-256", "content": "1" * 64}
    ]
    by_name = {c["name"]: c for c in doc["components"]}
    fastapi = by_name["fastapi"]
    assert fastapi["purl"] == "pkg:pypi/fastapi@0.115.0"
    assert fastapi["licenses"] == [{"expression": "MIT"}]
    assert fastapi["hashes"] == [{"alg": "SHA-256", "content": "a" * 64}]  # the lock's one hash
    h11 = {p["name"]: p["value"] for p in by_name["h11"]["properties"]}
    assert "hashes" not in by_name["h11"]  # two files locked: which one uv took is unknown
    assert h11["aibase:lock-sha256"] == f"{'c' * 64},{'d' * 64}"
    assert by_name["libc6"]["purl"] == "pkg:deb/debian/libc6@2.36?arch=amd64&distro=debian-12"
    base = by_name[BASE.name]
    assert base["type"] == "container" and base["version"] == BASE.digest
    # the same image, the same bytes: attaching it again adds nothing
    assert sbom_bytes(doc) == sbom_bytes(
        _sbom(
            image_files("amd64")
            | {f"{SITE}/h11-0.16.0.dist-info/METADATA": "Name: h11\nVersion: 0.16.0\n"}
        )
    )


def test_an_sbom_reads_back_as_what_it_lists_and_matches_its_image() -> None:
    files = image_files("amd64")
    facts = read_sbom(sbom_bytes(_sbom(files)))
    assert facts.image_digest == IMAGE and facts.platform == "linux/amd64"
    assert facts.base_digest == BASE.digest
    assert compare_sbom(facts, contents_of(files)) == []
    assert requirements_of(facts) == "fastapi==0.115.0\n"


def test_a_package_installed_after_the_sbom_was_made_is_named() -> None:
    facts = read_sbom(sbom_bytes(_sbom()))
    later = {f"{SITE}/requests-2.25.0.dist-info/METADATA": "Name: requests\nVersion: 2.25.0\n"}
    problems = compare_sbom(facts, contents_of(image_files("amd64"), later))
    assert problems == [
        "does not list the Python distribution(s) the image holds: requests 2.25.0 "
        f"(/{SITE}/requests-2.25.0.dist-info)"
    ]
    gone = {"var/lib/dpkg/status": ""}
    problems = compare_sbom(facts, contents_of(image_files("amd64"), gone))
    assert problems == ["lists OS package(s) the image does not hold: libc6 2.36 (amd64)"]


def _candidate(digest: str, subject: str, image: ImageId = ID) -> tuple[str, str, bytes]:
    return digest, subject, sbom_bytes(_sbom(image=image))


def test_only_an_sbom_that_refers_to_and_describes_the_image_is_believed() -> None:
    ours = _candidate("sha256:" + "a" * 64, IMAGE)
    chosen, problems = choose_sbom(IMAGE, [ours])
    assert chosen is not None and chosen[0] == ours[0] and problems == []
    # another image's SBOM, attached to ours
    theirs = _candidate("sha256:" + "c" * 64, IMAGE, ImageId("x", OTHER, "linux/amd64", "", ""))
    chosen, problems = choose_sbom(IMAGE, [theirs])
    assert chosen is None
    assert problems == [f"SBOM {theirs[0]} describes another image ({OTHER}), not {IMAGE}"]
    # listed under our fallback tag, but its manifest refers to another image
    elsewhere = _candidate("sha256:" + "d" * 64, OTHER)
    assert choose_sbom(IMAGE, [elsewhere])[1] == [
        f"SBOM {elsewhere[0]} refers to {OTHER}, not {IMAGE}"
    ]
    assert choose_sbom(IMAGE, [("sha256:" + "e" * 64, IMAGE, b"{}")])[1][0].endswith(
        "cannot be read: not a CycloneDX document"
    )


def test_sboms_that_disagree_are_all_refused_and_agreeing_ones_are_one() -> None:
    ours = _candidate("sha256:" + "a" * 64, IMAGE)
    again = ("sha256:" + "b" * 64, IMAGE, ours[2].replace(b"2026-11-27", b"2026-11-28"))
    chosen, problems = choose_sbom(IMAGE, [ours, again])
    assert chosen is not None and problems == []
    fewer = json.loads(ours[2])
    fewer["components"] = [c for c in fewer["components"] if c["name"] != "fastapi"]
    forged = ("sha256:" + "c" * 64, IMAGE, json.dumps(fewer).encode())
    chosen, problems = choose_sbom(IMAGE, [ours, forged])
    assert chosen is None
    assert problems == [
        f"2 SBOMs refer to {IMAGE} and disagree ({ours[0]}, {forged[0]}): refusing all of them"
    ]


@pytest.mark.parametrize(
    "lock",
    [
        "numpy==1.26.4 \\\n    --hash=sha256:"
        + "a" * 64
        + " \\\n    --hash=sha256:"
        + "b" * 64
        + "\n"
    ],
)
def test_the_lock_s_hashes_are_read_per_pin(lock: str) -> None:
    assert locked_hashes(lock) == {"numpy": ("1.26.4", ("a" * 64, "b" * 64))}


def test_a_zstd_layer_is_read_as_well_as_a_gzip_one() -> None:
    """--compression zstd pushes zstd layers: the SBOM must read them too."""
    import gzip

    import zstandard

    files = image_files("arm64")
    tar = gzip.decompress(layer_tar(files))
    zstd = zstandard.ZstdCompressor().compress(tar)
    assert read_layer(zstd) == read_layer(layer_tar(files)) == read_layer(tar)
