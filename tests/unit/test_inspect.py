"""`invoke inspect`: every label (its help promises them), the stand-in said in words, and
every tag that points to the index, in the text and in --json."""

from __future__ import annotations

import json

from aibase.registry.refs import parse_ref
from aibase.tools.describe import inspect_index, render

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
