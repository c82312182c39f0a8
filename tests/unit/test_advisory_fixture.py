"""The committed advisory subset (tests/fixtures/advisories) stays a true cut of the database
for what the audit tests audit: a package a lock gains must be looked up in it."""

from __future__ import annotations

from aibase.build.lock_format import parse_lock
from aibase.names import normalize_name

from .conftest import REPO

FIXTURE = REPO / "tests" / "fixtures" / "advisories"
LOCKS = sorted((REPO / "requirements" / "locks").glob("*.txt")) + sorted(
    (REPO / "tests" / "fixtures" / "locks").glob("*.txt")
)


def _listed() -> set[str]:
    lines = (FIXTURE / "packages.txt").read_text().splitlines()
    return {normalize_name(ln) for ln in lines if ln.strip() and not ln.startswith("#")}


def test_every_pin_of_the_committed_locks_was_cut_for() -> None:
    # both folders contribute: a moved one must not shrink what this test covers to nothing
    assert {lock.parent for lock in LOCKS} == {
        REPO / "requirements" / "locks",
        REPO / "tests" / "fixtures" / "locks",
    }
    pinned = {name for lock in LOCKS for name in parse_lock(lock.read_text())}
    missing = sorted(pinned - _listed())
    assert not missing, f"re-cut tests/fixtures/advisories for {missing} (see its README)"


def test_the_subset_holds_only_listed_packages_and_real_advisories() -> None:
    folders = [p for p in (FIXTURE / "pypa").iterdir() if p.is_dir()]
    assert {normalize_name(p.name) for p in folders} <= _listed()
    files = [f for p in folders for f in p.iterdir()]
    assert files and all(f.suffix == ".yaml" and f.stem.startswith("PYSEC-") for f in files)
    assert "Attribution 4.0 International" in (FIXTURE / "LICENSE").read_text()
    assert sum(f.stat().st_size for f in files) < 400_000  # a subset, not the database


def test_the_subset_holds_what_the_audit_tests_find() -> None:
    """requests 2.25.0's PYSEC-2023-74 (the canary), idna 2.10's PYSEC-2024-60, torch's."""
    for path in ("requests/PYSEC-2023-74", "idna/PYSEC-2024-60", "torch/PYSEC-2022-43015"):
        assert (FIXTURE / "pypa" / f"{path}.yaml").is_file(), path
