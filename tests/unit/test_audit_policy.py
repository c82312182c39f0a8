from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from aibase.audit.allowlist import (
    AllowEntry,
    Finding,
    apply_policy,
    load_allowlist,
    stale_entries,
)
from aibase.audit.pipaudit import AuditRun, Summary, audit_argv, parse_findings
from aibase.errors import AuditError

REQ = Finding(
    "requests", "2.25.0", "PYSEC-2023-74", ("CVE-2023-32681", "GHSA-j8r2-6x86-q33q"), ("2.31.0",)
)
TODAY = date(2026, 11, 27)


def entry(vid: str = "PYSEC-2023-74", expires: date = date(2027, 1, 31)) -> AllowEntry:
    return AllowEntry(vid, "requests", "reviewed", "platform-team", expires)


def test_unlisted_finding_blocks() -> None:
    result = apply_policy([REQ], [], TODAY)
    assert result.blocking == (REQ,) and not result.ok


def test_allowlisted_finding_is_suppressed_also_by_alias() -> None:
    assert apply_policy([REQ], [entry()], TODAY).ok
    by_alias = apply_policy([REQ], [entry("CVE-2023-32681")], TODAY)
    assert by_alias.ok and by_alias.suppressed[0][1].id == "CVE-2023-32681"


def test_expired_entry_no_longer_suppresses() -> None:
    old = entry(expires=date(2026, 11, 26))
    result = apply_policy([REQ], [old], TODAY)
    assert result.blocking == (REQ,)
    assert result.expired == (old,)


def test_entry_matching_nothing_in_the_whole_audit_is_stale() -> None:
    other = entry("PYSEC-0000-1")
    first = apply_policy([REQ], [entry(), other], TODAY)
    clean = apply_policy([], [entry(), other], TODAY)  # a second target without findings
    assert first.ok and stale_entries([entry(), other], [first, clean]) == (other,)
    # an entry used by one target only is not stale for the audit
    assert stale_entries([entry()], [clean, first]) == ()


def test_entry_for_another_package_does_not_suppress() -> None:
    wrong = AllowEntry("PYSEC-2023-74", "urllib3", "r", "o", date(2027, 1, 1))
    assert apply_policy([REQ], [wrong], TODAY).blocking == (REQ,)


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        (
            '[[allow]]\nid = "X"\npackage = "p"\nowner = "o"\nexpires = 2027-01-01\n',
            "missing reason",
        ),
        ('[[allow]]\nid = "X"\npackage = "p"\nreason = "r"\nowner = "o"\n', "missing expires"),
        (
            '[[allow]]\nid = "X"\npackage = "p"\nreason = "r"\nowner = "o"\nexpires = "soon"\n',
            "expires must be a date",
        ),
        (
            '[[allow]]\nid = "X"\npackage = "p"\nreason = "r"\nowner = "o"\nexpires = 2027-01-01\n'
            'note = "x"\n',
            "unknown key(s) note",
        ),
        ("[[allow]\n", "not valid TOML"),
    ],
)
def test_invalid_allowlist_entries_are_rejected(tmp_path: Path, body: str, expect: str) -> None:
    path = tmp_path / "allow.toml"
    path.write_text(body)
    with pytest.raises(AuditError) as info:
        load_allowlist(path)
    assert expect in info.value.render()


def test_valid_allowlist_loads(tmp_path: Path) -> None:
    path = tmp_path / "allow.toml"
    path.write_text(
        '[[allow]]\nid = "X"\npackage = "Requests"\nreason = "r"\nowner = "o"\n'
        "expires = 2027-01-01\n"
    )
    assert load_allowlist(path) == (AllowEntry("X", "requests", "r", "o", date(2027, 1, 1)),)
    assert load_allowlist(tmp_path / "absent.toml") == ()


def test_argv_is_strict_and_hash_checked(tmp_path: Path) -> None:
    argv = audit_argv(
        tmp_path / "l.txt",
        service="osv",
        osv_url="http://127.0.0.1:1/v1/query",
        hashed=True,
        output=tmp_path / "o.json",
    )
    assert "--strict" in argv and "--disable-pip" in argv and "--require-hashes" in argv
    assert argv[argv.index("--osv-url") + 1] == "http://127.0.0.1:1/v1/query"
    image = audit_argv(
        tmp_path / "i.txt", service="pypi", osv_url=None, hashed=False, output=tmp_path / "o.json"
    )
    assert "--no-deps" in image and "--require-hashes" not in image


def test_parse_findings() -> None:
    count, findings = parse_findings(
        {
            "dependencies": [
                {
                    "name": "requests",
                    "version": "2.25.0",
                    "vulns": [
                        {
                            "id": "PYSEC-2023-74",
                            "aliases": ["CVE-2023-32681"],
                            "fix_versions": ["2.31.0"],
                        }
                    ],
                },
                {"name": "idna", "version": "3.7", "vulns": []},
            ]
        }
    )
    assert count == 2
    assert findings == (
        Finding("requests", "2.25.0", "PYSEC-2023-74", ("CVE-2023-32681",), ("2.31.0",)),
    )


def test_the_summary_says_what_is_accepted_by_whom_until_when_and_why() -> None:
    torch = Finding("torch", "2.4.1", "CVE-2025-32434", ("GHSA-53q9-r3pm-6pq6",), ("2.6.0",))
    reason = "never torch.load untrusted files"
    accepted = AllowEntry("CVE-2025-32434", "torch", reason, "plat", date(2027, 3, 31))
    summary = Summary()
    run = AuditRun("/r/locks/cuda-linux-amd64.txt", 160, (torch,))
    summary.add(run, apply_policy([torch], [accepted], TODAY))
    assert "| /r/locks/cuda-linux-amd64.txt | 160 | 0 | - |" in summary.table()
    assert (
        "| CVE-2025-32434 (GHSA-53q9-r3pm-6pq6) | torch 2.4.1 | cuda-linux-amd64.txt | plat | "
        "2027-03-31 | never torch.load untrusted files |" in summary.table()
    )
    clean = Summary()
    clean.add(run, apply_policy([], [accepted], TODAY))
    assert "ACCEPTED" not in clean.table()
