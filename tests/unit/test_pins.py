from __future__ import annotations

import pytest

from aibase.pins import registry_location, rewrite_base_pins

from .conftest import VALID

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(("ref", "expect"), [
    ("python:3.11-slim", ("registry-1.docker.io", "library/python", "3.11-slim")),
    ("nvidia/cuda:12.4.1-runtime-ubuntu22.04",
     ("registry-1.docker.io", "nvidia/cuda", "12.4.1-runtime-ubuntu22.04")),
    ("localhost:5000/mirror/library/python:3.11-slim",
     ("localhost:5000", "mirror/library/python", "3.11-slim")),
    ("localhost:5000/x", ("localhost:5000", "x", "latest")),
    ("python:3.11-slim@" + DIGEST, ("registry-1.docker.io", "library/python", "3.11-slim")),
])
def test_registry_location(ref, expect):
    assert registry_location(ref) == expect


def test_rewrite_changes_exactly_one_line_per_base():
    new = rewrite_base_pins(VALID, {"cpu": f"python:3.11-slim@{DIGEST}"})
    diff = [(a, b) for a, b in zip(VALID.splitlines(), new.splitlines(), strict=True) if a != b]
    assert diff == [('base = "python:3.11-slim"', f'base = "python:3.11-slim@{DIGEST}"')]
    again = rewrite_base_pins(new, {"cpu": f"python:3.11-slim@{DIGEST}"})
    assert again == new
