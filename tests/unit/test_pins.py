from __future__ import annotations

from aibase.pins import rewrite_base_pins

from .conftest import VALID

DIGEST = "sha256:" + "a" * 64


def test_rewrite_changes_exactly_one_line_per_base():
    new = rewrite_base_pins(VALID, {"cpu": f"python:3.11-slim@{DIGEST}"})
    diff = [(a, b) for a, b in zip(VALID.splitlines(), new.splitlines(), strict=True) if a != b]
    assert diff == [('base = "python:3.11-slim"', f'base = "python:3.11-slim@{DIGEST}"')]
    again = rewrite_base_pins(new, {"cpu": f"python:3.11-slim@{DIGEST}"})
    assert again == new
