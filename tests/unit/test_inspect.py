"""`invoke inspect`: every label (its help promises them), the stand-in said in words, and
every tag that points to the index, in the text and in --json."""

from __future__ import annotations

import json

import pytest

from aibase.errors import NotFound
from aibase.registry.referrers import referrers_tag
from aibase.registry.refs import parse_ref
from aibase.tools.describe import inspect_index, render, show

from .conftest import FakeRegistry

REPO = "cerebral/ai-base-fixture"
SHARED = {
    "io.cerebral.ai-base.stand-in": "true",
    "io.cerebral.ai-base.stand-in.of": "python:3.11-slim",
    "io.cerebral.ai-base.variant": "fixture",
    "org.opencontainers.image.revision": "f" * 40,
}


def _index(fake: FakeRegistry) -> str:
    images = {
        p: fake.add_image(
            REPO, p.split("/")[1], SHARED | {"io.cerebral.ai-base.lock.sha256": p[-5:]}
        )
        for p in ("linux/amd64", "linux/arm64")
    }
    fake.add_index(REPO, {"linux/amd64": fake.add_image(REPO, "amd64", {})}, "older")
    return fake.add_index(REPO, images, "fixture", "fixture-20261203-f4d614b")


def test_inspect_shows_every_label_the_stand_in_and_the_tags(fake_registry: FakeRegistry) -> None:
    digest = _index(fake_registry)
    with fake_registry.client() as client:
        facts = inspect_index(client, parse_ref(f"localhost:5000/{REPO}:fixture"))
    text = render([facts], False, labels=True)
    assert "STAND-IN base: Debian 12 from bases-bootstrap, NOT python:3.11-slim" in text
    assert "  tags: fixture, fixture-20261203-f4d614b" in text
    assert "    io.cerebral.ai-base.stand-in=true" in text
    assert "    io.cerebral.ai-base.variant=fixture" in text
    assert "    io.cerebral.ai-base.lock.sha256=amd64" in text  # per platform, under it
    data = json.loads(render([facts], True))[0]
    assert data["digest"] == digest
    assert data["tags"] == ["fixture", "fixture-20261203-f4d614b"]
    assert data["stand_in_of"] == "python:3.11-slim"
    assert data["labels"]["io.cerebral.ai-base.stand-in"] == "true"
    assert {i["platform"]: i["labels"] for i in data["images"]} == {
        "linux/amd64": {"io.cerebral.ai-base.lock.sha256": "amd64"},
        "linux/arm64": {"io.cerebral.ai-base.lock.sha256": "arm64"},
    }


def test_inspect_names_each_image_s_sbom_and_provenance_and_prints_an_sbom(
    fake_registry: FakeRegistry,
) -> None:
    """What is attached is found from the image alone: inspect names the SBOM artifact and
    the provenance's attestation manifest per platform; --sbom prints the document (for a
    platform image's own digest, that image's alone)."""
    digest = _index(fake_registry)
    ref = parse_ref(f"localhost:5000/{REPO}@{digest}")
    with fake_registry.client() as client:
        text = show(client, ref, False, sbom=False)
        by_platform = json.loads(show(client, ref, False, sbom=True))
        amd64 = by_platform["linux/amd64"]["metadata"]["component"]["version"]
        one = json.loads(show(client, parse_ref(f"localhost:5000/{REPO}@{amd64}"), False, True))
    listed = json.loads(fake_registry.manifests[(REPO, referrers_tag(amd64))][1])["manifests"]
    assert f"    sbom {listed[0]['digest']}" in text
    assert text.count("    provenance sha256:") == 2
    assert sorted(by_platform) == ["linux/amd64", "linux/arm64"]
    assert one == by_platform["linux/amd64"]


def test_inspect_says_when_an_image_has_no_sbom(fake_registry: FakeRegistry) -> None:
    image = fake_registry.add_image(REPO, "amd64", SHARED)
    digest = fake_registry.add_index(REPO, {"linux/amd64": image}, attest=False)
    ref = parse_ref(f"localhost:5000/{REPO}@{digest}")
    with fake_registry.client() as client:
        assert "    sbom none attached" in show(client, ref, False, sbom=False)
        with pytest.raises(NotFound, match=f"linux/amd64 \\({image}\\) has no SBOM attached"):
            show(client, ref, False, sbom=True)
