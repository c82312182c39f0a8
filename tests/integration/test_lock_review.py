"""`invoke audit --base REV` for real: git's copy of a lock at REV against the working tree,
pip-audit against a loopback OSV endpoint serving the committed cut of the real advisory
database, the job summary file GitHub reads. No engine, no network beyond loopback."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from aibase.audit.osv_mirror import serve
from aibase.errors import ConfigError, VulnerabilitiesFound

from .conftest import Run, invoke, one_variant_project, resealed
from .test_audit import SNAPSHOT

HASH = "--hash=sha256:" + "0" * 64  # pip-audit reads name==version only (--no-deps)
ALLOW = """[[allow]]
id = "CVE-2023-32681"
package = "requests"
reason = "test: only internal endpoints"
owner = "platform-team"
expires = 2099-12-31
"""


def _lock(requests: str) -> str:
    pins = {"idna": "3.7", "requests": requests, "urllib3": "2.2.2"}
    return resealed("# a lock\n" + "".join(f"{n}=={v} \\\n    {HASH}\n" for n, v in pins.items()))


@pytest.fixture(scope="module")
def osv_url() -> Iterator[str]:
    with serve(SNAPSHOT) as url:
        yield url


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A one-variant project in a git repository whose lock moves requests 2.32.3 to 2.25.0
    (PYSEC-2023-74, fixed in 2.31.0) in the working tree."""
    one_variant_project(tmp_path, "requests\n", "cerebral/review-test")
    (tmp_path / "locks").mkdir()
    lock = tmp_path / "locks" / "x-linux-amd64.txt"
    lock.write_text(_lock("2.32.3"))
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "base"], check=True)
    lock.write_text(_lock("2.25.0"))
    return tmp_path


def _review(project: Path, osv_url: str, base: str = "HEAD") -> tuple[Run, str]:
    summary = project / "summary.md"
    summary.write_text("")
    run = invoke(
        *("audit", "--config", str(project / "images.toml"), "--base", base),
        *("--osv-url", osv_url, "--allowlist", str(project / "allow.toml")),
        *("--today", "2026-12-01"),
        env={"AIBASE_OUT": str(project / "out"), "GITHUB_STEP_SUMMARY": str(summary)},
    )
    return run, summary.read_text()


def test_a_change_bringing_a_real_advisory_fails_closed(project: Path, osv_url: str) -> None:
    run, summary = _review(project, osv_url)
    assert run.returncode == VulnerabilitiesFound.exit_code, run.output
    assert "x-linux-amd64.txt: requests 2.25.0 has PYSEC-2023-74 (" in run.output
    assert "move requests to 2.31.0" in run.output
    row = "| requests | changed | 2.32.3 | 2.25.0 | **NOT ALLOWED** PYSEC-2023-74 ("
    assert row in summary and row in run.output
    assert "| idna |" not in summary  # unchanged packages are not listed


def test_an_accepted_advisory_passes_and_says_so(project: Path, osv_url: str) -> None:
    (project / "allow.toml").write_text(ALLOW)
    run, summary = _review(project, osv_url)
    assert run.returncode == 0, run.output
    assert "accepted until 2099-12-31 (platform-team): PYSEC-2023-74 (" in summary


def test_no_change_contacts_no_service(project: Path) -> None:
    (project / "locks" / "x-linux-amd64.txt").write_text(_lock("2.32.3"))
    run, summary = _review(project, "http://127.0.0.1:9/v1/query")
    assert run.returncode == 0, run.output
    assert "no lock changed: nothing to review" in summary


def test_a_base_the_clone_lacks_is_named_with_the_fix(project: Path, osv_url: str) -> None:
    run, _ = _review(project, osv_url, base="HEAD~5")
    assert run.returncode == ConfigError.exit_code, run.output
    assert "'HEAD~5' is not a commit this clone" in run.output and "fetch-depth" in run.output
