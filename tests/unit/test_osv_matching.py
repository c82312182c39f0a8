from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from aibase.audit.osv_mirror import affects, in_ranges

RANGES: list[Mapping[str, Any]] = [
    {"type": "ECOSYSTEM", "events": [{"introduced": "2.3.0"}, {"fixed": "2.31.0"}]}
]


@pytest.mark.parametrize(
    ("version", "hit"),
    [
        ("2.2.9", False),
        ("2.3.0", True),
        ("2.25.0", True),
        ("2.30.99", True),
        ("2.31.0", False),
    ],
)
def test_introduced_fixed(version: str, hit: bool) -> None:
    assert in_ranges(version, RANGES) is hit


def test_last_affected_and_open_ranges() -> None:
    last: list[Mapping[str, Any]] = [
        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"last_affected": "1.2"}]}
    ]
    assert in_ranges("1.2", last) and not in_ranges("1.2.1", last)
    open_ended: list[Mapping[str, Any]] = [{"type": "ECOSYSTEM", "events": [{"introduced": "5.0"}]}]
    assert in_ranges("9.9", open_ended) and not in_ranges("4.9", open_ended)


def test_affects_uses_versions_list_and_package_name() -> None:
    vuln = {
        "affected": [
            {"package": {"name": "Foo_Bar", "ecosystem": "PyPI"}, "versions": ["1.0"], "ranges": []}
        ]
    }
    assert affects(vuln, "foo-bar", "1.0")
    assert not affects(vuln, "foo-bar", "1.1")
    assert not affects(vuln, "other", "1.0")
    assert not affects({**vuln, "withdrawn": "2024-01-01"}, "foo-bar", "1.0")
