from __future__ import annotations

from aibase.tools.base_pins import changed_lines, rewrite_base_pins

from .conftest import VALID

DIGEST = "sha256:" + "a" * 64


OTHER = "sha256:" + "b" * 64


def test_rewrite_changes_exactly_one_line_per_base() -> None:
    new = rewrite_base_pins(VALID, {"cpu": {"base": f"python:3.11-slim@{DIGEST}"}})
    diff = [(a, b) for a, b in zip(VALID.splitlines(), new.splitlines(), strict=True) if a != b]
    assert diff == [('base = "python:3.11-slim"', f'base = "python:3.11-slim@{DIGEST}"')]
    again = rewrite_base_pins(new, {"cpu": {"base": f"python:3.11-slim@{DIGEST}"}})
    assert again == new


def test_the_installer_is_pinned_beside_its_base() -> None:
    """The installer writes every group's files: an unpinned one would let a moved tag
    change the image with no reviewed line."""
    pins = {"cpu": {"base": f"python:3.11-slim@{DIGEST}", "installer": f"python:3.11-slim@{OTHER}"}}
    new = rewrite_base_pins(VALID, pins)
    assert changed_lines(VALID, new) == [
        ('base = "python:3.11-slim"', f'base = "python:3.11-slim@{DIGEST}"'),
        ("", f'installer = "python:3.11-slim@{OTHER}"'),
    ]
    assert new.index("installer = ") < new.index("[variants.cuda]")  # in its own table
    # a second update moves the existing line, adds none
    newer = rewrite_base_pins(new, {"cpu": {"installer": f"python:3.11-slim@{DIGEST}"}})
    assert changed_lines(new, newer) == [
        (f'installer = "python:3.11-slim@{OTHER}"', f'installer = "python:3.11-slim@{DIGEST}"')
    ]
