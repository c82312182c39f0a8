"""Typed run records: a cell's result and a variant's state (merged, verified, smoke-tested).

Records are passed from step to step in memory; they are also written to disk because CI
jobs hand them to each other as files. Every write is atomic (temp file + os.replace), so
an interrupted run leaves the previous file or the new one, never half of one. Every read
checks the record's kind and fields: a truncated or foreign file is one clear error.

Top level: the records are the contract between build/, release/ and the CI jobs.
May import: errors.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from aibase.errors import StateError

SCHEMA = 1


@dataclass(frozen=True)
class CellRecord:
    """One variant built for one platform and pushed: what a cell job hands on."""

    variant: str
    platform: str
    registry: str
    repository: str
    revision: str
    config_digest: str
    digest: str  # what buildx pushed (an index of one image, or the image itself)
    compressed_bytes: int
    seconds: float


@dataclass(frozen=True)
class MergeRecord:
    """The index made from one run's cells, under its immutable tags."""

    registry: str
    repository: str
    revision: str
    config_digest: str
    index_digest: str
    tags: tuple[str, ...]
    cells: Mapping[str, str]  # platform -> the cell digest that went in


@dataclass(frozen=True)
class VerifyRecord:
    index_digest: str
    platforms: Mapping[str, str]  # platform -> image manifest digest, as read in the registry
    # what each promoted tag served when this index was verified (None: the tag did not
    # exist): promote moves a tag only if it still serves that, so two runs cannot both win
    promoted_before: Mapping[str, str | None]


@dataclass(frozen=True)
class SmokeRecord:
    platform: str
    digest: str
    problems: tuple[str, ...]
    skipped: tuple[str, ...] = ()  # checks not run, each with its reason (no GPU here)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class SmokeResult:
    """One platform's smoke test of one index, as a CI smoke job hands it to promote."""

    variant: str
    index_digest: str
    record: SmokeRecord


@dataclass(frozen=True)
class VariantState:
    variant: str
    registry: str
    repository: str
    merged: MergeRecord | None = None
    verified: VerifyRecord | None = None
    smoke: Mapping[str, SmokeRecord] = field(default_factory=dict)
    # the index the dependents were told about (notify), so that a re-run of promote sends
    # a notice that failed and never one that was delivered
    notified: str | None = None


def write_atomic(path: Path, text: str) -> None:
    """Replace path with text in one step: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file 0600; keep the mode a plain write would give (lock files
        # are COPYed into images, and their mode is part of the layer's digest)
        Path(tmp).chmod(path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _dump(kind: str, record: Any) -> str:
    return json.dumps({"kind": kind, "schema": SCHEMA, **asdict(record)}, indent=2, sort_keys=True)


def _load(path: Path, kind: str, fix: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise StateError(f"{path}: no {kind} record", fix) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StateError(f"{path}: truncated or not JSON ({exc})", f"delete it; {fix}") from None
    if not isinstance(data, dict) or data.get("kind") != kind:
        got = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise StateError(f"{path}: not a {kind} record (kind: {got!r})", f"delete it; {fix}")
    if data.get("schema") != SCHEMA:
        raise StateError(
            f"{path}: {kind} record of schema {data.get('schema')!r}, this tool writes {SCHEMA}",
            f"delete it; {fix}",
        )
    return data


def _build(cls: type[Any], data: Mapping[str, Any], path: Path, fix: str) -> Any:
    names = {f.name for f in fields(cls)}
    given = set(data) - {"kind", "schema"}
    missing, extra = names - given, given - names
    if missing or extra:
        raise StateError(
            f"{path}: not a record this tool wrote (missing: {sorted(missing) or '-'}, "
            f"unexpected: {sorted(extra) or '-'})",
            f"delete it; {fix}",
        )
    try:
        return cls(**{k: data[k] for k in names})
    except TypeError as exc:
        raise StateError(f"{path}: malformed record ({exc})", f"delete it; {fix}") from None


def write_cell(path: Path, record: CellRecord) -> None:
    write_atomic(path, _dump("aibase.cell", record))


def read_cell(path: Path) -> CellRecord:
    fix = "rebuild the cell: invoke build --variant V --platform P --push"
    data = _load(path, "aibase.cell", fix)
    record: CellRecord = _build(CellRecord, data, path, fix)
    if not str(record.digest).startswith("sha256:"):
        raise StateError(f"{path}: digest {record.digest!r} is not a sha256 digest", fix)
    return record


def write_variant(path: Path, state: VariantState) -> None:
    write_atomic(path, _dump("aibase.variant", state))


def read_variant(path: Path) -> VariantState | None:
    """The variant's state, or None when this checkout has none yet."""
    if not path.exists():
        return None
    fix = "rerun invoke merge / verify for the variant (or invoke build-all)"
    data = dict(_load(path, "aibase.variant", fix))
    data.setdefault("notified", None)  # a record from before notices were recorded
    try:
        if data.get("merged") is not None:
            merged = dict(data["merged"]) | {"tags": tuple(data["merged"]["tags"])}
            data["merged"] = _build(MergeRecord, merged, path, fix)
        if data.get("verified") is not None:
            data["verified"] = _build(VerifyRecord, data["verified"], path, fix)
        data["smoke"] = {
            p: _build(
                SmokeRecord,
                s | {"problems": tuple(s["problems"]), "skipped": tuple(s["skipped"])},
                path,
                fix,
            )
            for p, s in (data.get("smoke") or {}).items()
        }
    except (KeyError, TypeError, AttributeError) as exc:
        raise StateError(f"{path}: malformed variant record ({exc})", f"delete it; {fix}") from None
    state: VariantState = _build(VariantState, data, path, fix)
    return state


def write_smoke(path: Path, result: SmokeResult) -> None:
    write_atomic(path, _dump("aibase.smoke", result))


def read_smoke(path: Path) -> SmokeResult:
    fix = "rerun the smoke job: invoke smoke --variant V --platform P"
    data = dict(_load(path, "aibase.smoke", fix))
    try:
        rec = data["record"]
        tuples = {"problems": tuple(rec["problems"]), "skipped": tuple(rec["skipped"])}
        data["record"] = _build(SmokeRecord, rec | tuples, path, fix)
    except (KeyError, TypeError) as exc:
        raise StateError(f"{path}: malformed smoke record ({exc})", f"delete it; {fix}") from None
    result: SmokeResult = _build(SmokeResult, data, path, fix)
    return result
