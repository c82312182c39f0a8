"""Run records: written atomically, read back typed, and a bad file is one clear error."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from aibase.errors import StateError
from aibase.state import (
    CellRecord,
    MergeRecord,
    SmokeRecord,
    VariantState,
    VerifyRecord,
    read_cell,
    read_variant,
    write_atomic,
    write_cell,
    write_variant,
)

D = "sha256:" + "a" * 64
CELL = CellRecord(
    "fixture", "linux/amd64", "localhost:5000", "cerebral/x", "f" * 40, "c" * 64, D, 1234, 12.5
)
STATE = VariantState(
    "fixture",
    "localhost:5000",
    "cerebral/x",
    MergeRecord(
        "localhost:5000", "cerebral/x", "f" * 40, "c" * 64, D, ("t1", "t2"), {"linux/amd64": D}
    ),
    VerifyRecord(D, {"linux/amd64": D}, {"fixture": None, "fixture-py3.11": D}),
    {"linux/amd64": SmokeRecord("linux/amd64", D, ("a problem",))},
)


def test_records_round_trip(tmp_path: Path) -> None:
    write_cell(tmp_path / "cell.json", CELL)
    assert read_cell(tmp_path / "cell.json") == CELL
    write_variant(tmp_path / "v.json", STATE)
    assert read_variant(tmp_path / "v.json") == STATE
    assert read_variant(tmp_path / "absent.json") is None


def test_the_notified_index_is_recorded_and_an_older_record_reads_without_it(
    tmp_path: Path,
) -> None:
    write_variant(tmp_path / "v.json", replace(STATE, notified=D))
    assert read_variant(tmp_path / "v.json") == replace(STATE, notified=D)
    older = json.loads((tmp_path / "v.json").read_text())
    del older["notified"]  # written before notices were recorded: none was
    (tmp_path / "v.json").write_text(json.dumps(older))
    assert read_variant(tmp_path / "v.json") == STATE


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        ('{"kind": "aibase.cell", "schema": 1, "variant": "fix', "truncated or not JSON"),
        (
            '{"kind": "aibase.variant", "schema": 1}',
            "not a aibase.cell record (kind: 'aibase.variant')",
        ),
        ('{"variant": "fixture", "digest": "sha256:x"}', "not a aibase.cell record (kind: None)"),
        ('["a"]', "not a aibase.cell record"),
        ('{"kind": "aibase.cell", "schema": 99}', "record of schema 99"),
        ('{"kind": "aibase.cell", "schema": 1, "variant": "x"}', "missing: ["),
    ],
)
def test_a_bad_cell_file_is_named_with_the_fix(tmp_path: Path, content: str, expect: str) -> None:
    path = tmp_path / "fixture-linux-amd64.json"
    path.write_text(content)
    with pytest.raises(StateError) as info:
        read_cell(path)
    text = info.value.render()
    assert str(path) in text and expect in text
    assert "invoke build" in text  # the fix


def test_a_cell_whose_digest_is_not_a_digest_is_refused(tmp_path: Path) -> None:
    data = json.loads(json.dumps({"kind": "aibase.cell", "schema": 1, **CELL.__dict__}))
    data["digest"] = "latest"
    (tmp_path / "c.json").write_text(json.dumps(data))
    with pytest.raises(StateError, match="is not a sha256 digest"):
        read_cell(tmp_path / "c.json")


def test_a_bad_variant_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    path.write_text(
        '{"kind": "aibase.variant", "schema": 1, "variant": "x", "registry": "r", '
        '"repository": "p", "merged": {"index_digest": 1}, "verified": null, '
        '"smoke": {}}'
    )
    with pytest.raises(StateError) as info:
        read_variant(path)
    assert str(path) in info.value.render() and "delete it" in info.value.render()


def test_an_interrupted_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    write_atomic(path, "old")

    def crash(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left


def test_an_atomic_write_keeps_the_mode_a_plain_write_gives(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_atomic(tmp_path / "new.txt", "x")
    assert (tmp_path / "new.txt").stat().st_mode == plain.stat().st_mode
    plain.chmod(0o640)
    write_atomic(plain, "y")  # an existing file keeps its own
    assert plain.stat().st_mode & 0o777 == 0o640
