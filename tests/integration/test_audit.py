"""pip-audit for real, against a local OSV-compatible endpoint serving real advisories: the
committed subset of the advisory database in tests/fixtures/advisories (no engine needed, no
network beyond loopback, nothing beside the checkout)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from aibase.audit.osv_mirror import serve
from aibase.errors import AuditError, VulnerabilitiesFound

from .conftest import REPO, Answer, Built, Request, Run, answering, invoke, one_variant_project

# A real subset of pypa/advisory-database, committed (its README says what and why);
# AIBASE_ADVISORIES points the tests at another copy, e.g. the full database.
COMMITTED = REPO / "tests" / "fixtures" / "advisories" / "pypa"


def snapshot_for(env: Mapping[str, str]) -> Path:
    return Path(env.get("AIBASE_ADVISORIES") or COMMITTED)


SNAPSHOT = snapshot_for(os.environ)
# The snapshot is from 2024-10-10: it says nothing about advisories published later.
VULNERABLE = "requests==2.25.0"  # PYSEC-2023-74 (CVE-2023-32681), fixed in 2.31.0


@pytest.fixture(scope="module")
def osv_url() -> Iterator[str]:
    if not SNAPSHOT.is_dir():
        pytest.fail(
            f"advisory snapshot missing: {SNAPSHOT} (unset AIBASE_ADVISORIES for the committed one)"
        )
    with serve(SNAPSHOT) as url:
        yield url


def test_the_advisories_come_with_the_checkout() -> None:
    """A clone on a GitHub runner has nothing beside it and no AIBASE_ADVISORIES: the default
    snapshot is inside the repository and committed there."""
    default = snapshot_for({})
    assert default.is_relative_to(REPO) and default.is_dir()
    tracked = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--", str(default)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "tests/fixtures/advisories/pypa/requests/PYSEC-2023-74.yaml" in tracked


def _project(tmp: Path, pins: str, allow: str = "") -> Path:
    """A one-variant config whose lock we write by hand (hashes are real, from PyPI)."""
    return one_variant_project(tmp, pins, "cerebral/audit-test", allow)


def summary_rows(output: str) -> list[dict[str, str]]:
    """The audit summary's rows (`| target | packages | blocking vulnerabilities | ...`), each
    cell by its column's name."""
    lines = output.splitlines()
    start = lines.index("| target | packages | blocking vulnerabilities | fix versions |")
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("| "):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True)))
    return rows


def _lock(project: Path) -> None:
    run = invoke("lock", "--config", str(project / "images.toml"))
    assert run.returncode == 0, run.output


def _audit(project: Path, osv_url: str, *extra: str) -> Run:
    return invoke(
        "audit",
        "--config",
        str(project / "images.toml"),
        "--osv-url",
        osv_url,
        "--allowlist",
        str(project / "allow.toml"),
        "--today",
        "2026-11-27",
        *extra,
        env={"AIBASE_OUT": str(project / "out")},
    )


# requests 2.25.0 needs idna<3, and idna 2.10 has PYSEC-2024-60: accepted for these tests,
# so that requests' advisory is the one that decides.
IDNA = """[[allow]]
id = "PYSEC-2024-60"
package = "idna"
reason = "test: comes with requests 2.25.0"
owner = "platform-team"
expires = 2099-12-31

"""
ENTRY = """[[allow]]
id = "PYSEC-2023-74"
package = "requests"
reason = "test: only internal endpoints"
owner = "platform-team"
expires = {expires}
"""


@pytest.fixture(scope="module")
def vulnerable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = _project(tmp_path_factory.mktemp("vuln"), f"{VULNERABLE}\n", IDNA)
    _lock(project)
    return project


def test_vulnerable_lock_fails_naming_the_advisory(vulnerable: Path, osv_url: str) -> None:
    run = _audit(vulnerable, osv_url)
    assert run.returncode == VulnerabilitiesFound.exit_code
    (row,) = summary_rows(run.output)
    assert row["blocking vulnerabilities"] == "1"
    assert row["fix versions"] == "requests 2.25.0: PYSEC-2023-74 -> 2.31.0"
    assert "1 vulnerability not allowed by the policy" in run.output
    sbom = next((vulnerable / "out" / "audit").glob("*.cdx.json"))
    assert '"bomFormat": "CycloneDX"' in sbom.read_text() and "requests" in sbom.read_text()


@pytest.fixture
def allowlist(vulnerable: Path) -> Iterator[Path]:
    """The module project's allowlist, for a test to edit: put back however the test ends."""
    path = vulnerable / "allow.toml"
    kept = path.read_text()
    try:
        yield path
    finally:
        path.write_text(kept)


def test_allowlisted_passes_and_expired_fails_again(
    vulnerable: Path, allowlist: Path, osv_url: str
) -> None:
    allowlist.write_text(IDNA + ENTRY.format(expires="2027-01-31"))
    ok = _audit(vulnerable, osv_url)
    assert ok.returncode == 0, ok.output
    assert "ACCEPTED until 2027-01-31: requests 2.25.0 PYSEC-2023-74" in ok.output
    allowlist.write_text(IDNA + ENTRY.format(expires="2026-11-01"))
    expired = _audit(vulnerable, osv_url)
    assert expired.returncode == VulnerabilitiesFound.exit_code
    assert "EXPIRED allowlist entry PYSEC-2023-74" in expired.output
    assert "1 vulnerability not allowed by the policy" in expired.output


def test_clean_lock_passes_and_reports_stale_entries(tmp_path: Path, osv_url: str) -> None:
    project = _project(tmp_path, "requests==2.32.3\n", ENTRY.format(expires="2027-01-31"))
    _lock(project)
    run = _audit(project, osv_url)
    assert run.returncode == 0, run.output
    assert "stale allowlist entry PYSEC-2023-74" in run.output
    (row,) = summary_rows(run.output)
    assert row["target"].endswith("x-linux-amd64.txt")
    assert int(row["packages"]) >= 5  # requests and its four dependencies: really audited
    assert (row["blocking vulnerabilities"], row["fix versions"]) == ("0", "-")


def test_unreachable_service_fails_instead_of_passing(vulnerable: Path) -> None:
    run = _audit(vulnerable, "http://127.0.0.1:9/v1/query")
    assert run.returncode == AuditError.exit_code  # "could not run" is not "found nothing"
    assert "could not run against http://127.0.0.1:9/v1/query" in run.output
    assert "No known vulnerabilities" not in run.output.split("error:")[-1]


@contextmanager
def _recording_proxy(seen: list[tuple[str, str]]) -> Iterator[dict[str, str]]:
    """An HTTP(S) proxy on loopback that records each request and forwards none (502); yields
    the environment that sends pip-audit's, httpx's and pip's traffic through it."""

    def record(request: Request) -> Answer:
        seen.append((request.method, request.path))
        return 502, {}, b""

    with answering(record) as url:
        proxies = {name: url for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")}
        proxies |= {name.lower(): url for name in proxies}
        yield proxies | {"NO_PROXY": "", "no_proxy": ""}


def test_no_service_chosen_contacts_nothing(vulnerable: Path) -> None:
    seen: list[tuple[str, str]] = []
    config = ("--config", str(vulnerable / "images.toml"))
    with _recording_proxy(seen) as env:
        run = invoke("audit", *config, env=env)
        assert run.returncode == AuditError.exit_code
        assert "no vulnerability service chosen" in run.output
        assert seen == []
        # the control: told a service (at an address that resolves nowhere), the same command
        # asks the proxy, so the silence above is an observation, not a deaf recorder
        told = invoke("audit", *config, "--osv-url", "http://osv.invalid/v1/query", env=env)
    assert told.returncode == AuditError.exit_code
    assert ("POST", "http://osv.invalid/v1/query") in seen


@pytest.mark.usefixtures("osv_url")
def test_committed_locks_against_the_snapshot(tmp_path: Path) -> None:
    """The project's own locks, audited for real against the snapshot (what the closing
    note reports); fails if the snapshot knows a vulnerability the allowlist does not cover."""
    shutil.copy(REPO / "audit-allowlist.toml", tmp_path / "allow.toml")
    run = invoke(
        "audit",
        "--snapshot",
        str(SNAPSHOT),
        "--allowlist",
        str(tmp_path / "allow.toml"),
        "--today",
        "2026-11-27",
        "--allow-missing",
        "cpu/linux/amd64",
        env={"AIBASE_OUT": str(tmp_path)},
    )
    assert "| target | packages |" in run.output
    assert len(list((tmp_path / "audit").glob("*.cdx.json"))) >= 3
    assert run.returncode == 0, run.output[-3000:]


@pytest.mark.engine  # builds the fixture: the only one here that needs the engine
def test_a_package_installed_outside_the_lock_cannot_hide(
    built: Built, tmp_path: Path, osv_url: str
) -> None:
    """The image audit reads what the image really holds, not the lock: this image has no
    SBOM attached (it was pushed by hand), so it says so and reads its layers instead."""

    from .conftest import FIXTURE_CONFIG, IT_REPO, REGISTRY, push_image

    ref = push_image(
        f"FROM {REGISTRY}/{IT_REPO}@{built.platform_digests['linux/amd64']}\n"
        "RUN --mount=type=secret,id=ca_bundle,target=/run/secrets/ca.pem "
        f"PIP_CERT=/run/secrets/ca.pem pip install --no-deps {VULNERABLE}\n",
        f"{REGISTRY}/cerebral/ai-base-broken:outside-the-lock",
        tmp_path,
    )
    allow = tmp_path / "allow.toml"
    allow.write_text("")
    run = invoke(
        "audit",
        "--config",
        str(FIXTURE_CONFIG),
        "--osv-url",
        osv_url,
        "--allowlist",
        str(allow),
        "--image",
        ref,
        "--platform",
        "linux/amd64",
        env={"AIBASE_OUT": str(tmp_path / "out")},
    )
    assert run.returncode == VulnerabilitiesFound.exit_code
    rows = {Path(r["target"]).name: r for r in summary_rows(run.output)}
    assert set(rows) == {
        "fixture-linux-amd64.txt",
        "fixture-linux-arm64.txt",
        "image-linux-amd64.txt",
    }
    for lock in ("fixture-linux-amd64.txt", "fixture-linux-arm64.txt"):  # the locks are clean...
        assert (rows[lock]["blocking vulnerabilities"], rows[lock]["fix versions"]) == ("0", "-")
    image = rows["image-linux-amd64.txt"]  # ...the image is not
    assert image["blocking vulnerabilities"] == "1"
    assert image["fix versions"].startswith("requests 2.25.0: PYSEC-2023-74 -> ")
    assert f"{ref} linux/amd64: no SBOM attached to sha256:" in run.output
    assert "auditing what its layers hold (read from the registry)" in run.output


@pytest.mark.alone  # counts the engine's containers, which other workers change
@pytest.mark.engine
def test_an_image_s_attached_sbom_is_audited_without_a_container(
    built: Built, tmp_path: Path, osv_url: str
) -> None:
    """The fixture's index carries an SBOM per platform image: the audit reads it from the
    registry (no container starts) and audits exactly what it lists."""
    from aibase.audit.sbom import SBOM_TYPE, read_sbom
    from aibase.registry.client import RegistryClient
    from aibase.registry.referrers import read_referrers

    from .conftest import FIXTURE_CONFIG, IT_REPO, REGISTRY

    allow = tmp_path / "allow.toml"
    allow.write_text("")
    ref = f"{REGISTRY}/{IT_REPO}@{built.index_digest}"
    before = subprocess.run(["docker", "ps", "-aq"], capture_output=True, text=True, check=True)
    args = (
        "--osv-url",
        osv_url,
        "--allowlist",
        str(allow),
        "--image",
        ref,
        "--platform",
        "linux/amd64",
    )
    run = invoke(
        "audit", "--config", str(FIXTURE_CONFIG), *args, env={"AIBASE_OUT": str(tmp_path / "out")}
    )
    assert run.returncode == 0, run.output[-3000:]
    with RegistryClient(REGISTRY) as client:
        amd64 = built.platform_digests["linux/amd64"]
        (sbom,) = read_referrers(client, IT_REPO, amd64, SBOM_TYPE)
    assert f"{ref} linux/amd64: auditing the SBOM {sbom.digest} attached to {amd64}" in run.output
    rows = {Path(r["target"]).name: r for r in summary_rows(run.output)}
    listed = {name for name, _, _ in read_sbom(sbom.payload).python}
    assert rows["image-linux-amd64.txt"]["packages"] == str(len(listed))
    after = subprocess.run(["docker", "ps", "-aq"], capture_output=True, text=True, check=True)
    assert after.stdout == before.stdout  # no container ran (none left behind either way)


def test_a_folder_that_is_not_an_advisory_database_fails(vulnerable: Path) -> None:
    """The parent of the right folder used to audit a known-vulnerable lock as clean."""
    run = invoke(
        "audit",
        "--config",
        str(vulnerable / "images.toml"),
        "--snapshot",
        str(SNAPSHOT.parent),
        "--allowlist",
        str(vulnerable / "allow.toml"),
        env={"AIBASE_OUT": str(vulnerable / "out")},
    )
    assert run.returncode == AuditError.exit_code
    assert "is not an advisory database" in run.output


@contextmanager
def _fake_osv(status: int, body: bytes) -> Iterator[str]:
    """An 'OSV service' on loopback that answers every query the same way."""

    def answer(_: Request) -> Answer:
        return status, {"Content-Type": "application/json"}, body

    with answering(answer, "/v1/query") as url:
        yield url


@pytest.mark.parametrize(("status", "body"), [(200, b"{}"), (500, b"oops"), (200, b"not json")])
def test_a_service_that_answers_oddly_fails_instead_of_passing(
    vulnerable: Path, status: int, body: bytes
) -> None:
    with _fake_osv(status, body) as url:
        run = _audit(vulnerable, url)
    assert run.returncode == AuditError.exit_code, run.output
    assert "not allowed by the policy" not in run.output


def test_a_missing_lock_fails_unless_named_as_a_known_gap(tmp_path: Path, osv_url: str) -> None:
    project = _project(tmp_path, "requests==2.32.3\n")  # never locked
    run = _audit(project, osv_url)
    assert run.returncode == AuditError.exit_code
    assert "no lock to audit for x/linux/amd64" in run.output
    allowed = _audit(project, osv_url, "--allow-missing", "x/linux/amd64")
    assert allowed.returncode == 0, allowed.output
    assert "not audited: x/linux/amd64 has no lock (allowed by --allow-missing)" in allowed.output


# GHSA-53q9-r3pm-6pq6 as OSV serves it (its essentials): published in 2025, after the snapshot,
# so the tests write it into a copy of the snapshot; a live audit reports it for torch 2.4.1.
TORCH_LOAD_RCE: dict[str, object] = {
    "schema_version": "1.4.0",
    "id": "GHSA-53q9-r3pm-6pq6",
    "modified": "2025-04-18T00:00:00Z",
    "published": "2025-04-18T00:00:00Z",
    "aliases": ["CVE-2025-32434"],
    "summary": "PyTorch: `torch.load` with `weights_only=True` leads to remote code execution",
    "details": "When loading a model using torch.load with weights_only=True, it can still "
    "achieve remote command execution. Fixed in torch 2.6.0.",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "torch", "purl": "pkg:pypi/torch"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.6.0"}]}],
        }
    ],
    "database_specific": {"severity": "CRITICAL", "cwe_ids": ["CWE-502"]},
}
# Made up by the test: another torch advisory, one nobody accepted.
OTHER_TORCH: dict[str, object] = TORCH_LOAD_RCE | {
    "id": "TEST-2026-0001",
    "aliases": [],
    "summary": "made up by the test: any torch advisory the allowlist does not name",
}


def _live_db(tmp: Path, *advisories: dict[str, object]) -> Path:
    """The snapshot plus advisories published after it, served like the live database."""
    db = tmp / "pypa"
    shutil.copytree(SNAPSHOT, db)
    for adv in advisories:
        (db / "torch" / f"{adv['id']}.json").write_text(json.dumps(adv, indent=2))
    return db


def _audit_committed(tmp: Path, db: Path, today: str, *extra: str) -> Run:
    """The project's own locks with the project's own allowlist, as audit.yml audits them."""
    shutil.copy(REPO / "audit-allowlist.toml", tmp / "allow.toml")
    args = ["--snapshot", str(db), "--allowlist", str(tmp / "allow.toml"), "--today", today]
    return invoke("audit", *args, *extra, env={"AIBASE_OUT": str(tmp / "out")})


# pip-audit names a finding by its PYSEC or CVE id first, the GHSA id among the aliases
ACCEPTED_ROW = (
    "| CVE-2025-32434 (GHSA-53q9-r3pm-6pq6) | torch 2.4.1 | cuda-linux-amd64.txt | "
    "platform-team | 2027-03-31 | services must never torch.load a file"
)


def test_the_required_torch_passes_with_its_vulnerability_accepted(tmp_path: Path) -> None:
    """The committed allowlist accepts CVE-2025-32434 for torch 2.4.1 (the platform requires
    it), with an owner, an expiry and the mitigation; the audit says so."""
    db = _live_db(tmp_path, TORCH_LOAD_RCE)
    run = _audit_committed(tmp_path, db, "2026-11-27", "--allow-missing", "cpu/linux/amd64")
    assert run.returncode == 0, run.output[-3000:]
    assert (
        "ACCEPTED until 2027-03-31: torch 2.4.1 CVE-2025-32434 (GHSA-53q9-r3pm-6pq6), "
        "owner platform-team: services must never torch.load a file" in run.output
    )
    assert ACCEPTED_ROW in run.output  # the summary table (and the job summary)
    for lock in ("cpu-linux-arm64.txt", "cuda-linux-arm64.txt"):
        assert f"| torch 2.4.1 | {lock} | platform-team | 2027-03-31 |" in run.output
    assert "stale allowlist entry" not in run.output


def test_the_accepted_vulnerability_blocks_again_once_its_entry_expired(tmp_path: Path) -> None:
    run = _audit_committed(
        tmp_path, _live_db(tmp_path, TORCH_LOAD_RCE), "2027-04-01", "--variant", "cuda"
    )
    assert run.returncode == VulnerabilitiesFound.exit_code, run.output[-3000:]
    assert "EXPIRED allowlist entry CVE-2025-32434 (torch) since 2027-03-31" in run.output
    assert "torch 2.4.1: CVE-2025-32434 -> 2.6.0" in run.output
    assert (
        "2 vulnerabilities not allowed by the policy; expired allowlist entries: "
        "CVE-2025-32434 (torch, 2027-03-31)" in run.output
    )
    assert "ACCEPTED" not in run.output


def test_a_finding_the_allowlist_does_not_name_still_fails(tmp_path: Path) -> None:
    db = _live_db(tmp_path, TORCH_LOAD_RCE, OTHER_TORCH)
    run = _audit_committed(tmp_path, db, "2026-11-27", "--variant", "cuda")
    assert run.returncode == VulnerabilitiesFound.exit_code, run.output[-3000:]
    assert "torch 2.4.1: TEST-2026-0001 -> 2.6.0" in run.output
    assert "2 vulnerabilities not allowed by the policy" in run.output  # one per cuda lock
    assert "expired allowlist entries" not in run.output
    assert ACCEPTED_ROW in run.output  # the accepted one stays accepted, nothing more
