"""`invoke images` over the in-memory registry: each index once, by digest, and a cell's
single-platform image (its build-* tag, merge's input) counted, not listed as an image."""

from __future__ import annotations

import pytest

from aibase.tools.describe import list_indexes, render

from .conftest import FakeRegistry

REPO = "cerebral/ai-base-fixture"
LABELS = {"org.opencontainers.image.created": "2026-12-03T10:41:24Z"}


def test_images_lists_each_index_once_and_leaves_cell_images_out(
    fake_registry: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    amd = fake_registry.add_image(REPO, "amd64", LABELS)
    arm = fake_registry.add_image(REPO, "arm64", LABELS)
    both = {"linux/amd64": amd, "linux/arm64": arm}
    index = fake_registry.add_index(REPO, both, "fixture", "fixture-20261203-24f6a0d-2cd3f2")
    for platform, image in both.items():
        slug = platform.replace("/", "-")
        fake_registry.add_index(REPO, {platform: image}, f"build-fixture-{slug}-20261203-24f6a0d")
    with fake_registry.client() as client:
        facts = list_indexes(client, "localhost:5000", REPO)
    assert [(f.digest, f.tags) for f in facts] == [
        (index, ("fixture", "fixture-20261203-24f6a0d-2cd3f2"))
    ]
    text = render(facts, as_json=False)
    assert text.splitlines()[0] == f"localhost:5000/{REPO}@{index}"  # the digest once
    assert text.count(index) == 1 and "build-" not in text
    assert "2 cell image(s) left out" in capsys.readouterr().err
