"""pip-audit runs that cannot pass silently, plus the allowlist policy.

Every run uses --strict (a package the service could not check fails the audit instead of
being skipped) and, for locks, --disable-pip --require-hashes. Findings are then filtered
by the allowlist: entries need a reason, an owner and an expiry; an expired entry stops
suppressing; an entry that matches nothing is reported as stale.
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from aibase import proc
from aibase.errors import AibaseError

SERVICES = ("osv", "pypi")
ALLOWLIST = "audit-allowlist.toml"


class AuditError(AibaseError):
    """The audit could not run, or its policy file is invalid."""


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    vuln_id: str
    aliases: tuple[str, ...]
    fix_versions: tuple[str, ...]

    def ids(self) -> set[str]:
        return {self.vuln_id, *self.aliases}


@dataclass(frozen=True)
class AllowEntry:
    id: str
    package: str
    reason: str
    owner: str
    expires: date


@dataclass(frozen=True)
class PolicyResult:
    blocking: tuple[Finding, ...]
    suppressed: tuple[tuple[Finding, AllowEntry], ...]
    expired: tuple[AllowEntry, ...]  # matched a finding but no longer suppresses it
    stale: tuple[AllowEntry, ...]  # matched nothing: remove it

    @property
    def ok(self) -> bool:
        return not self.blocking


@dataclass(frozen=True)
class AuditRun:
    target: str  # the lock file or image audited
    packages: int
    findings: tuple[Finding, ...]
    sbom: Path | None = None
    seconds: float = 0.0


def load_allowlist(path: Path) -> tuple[AllowEntry, ...]:
    """[[allow]] tables: id, package, reason, owner, expires (YYYY-MM-DD); all required."""
    if not path.exists():
        return ()
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise AuditError(f"{path}: not valid TOML: {exc}", "fix the syntax") from None
    entries: list[AllowEntry] = []
    for i, raw in enumerate(data.get("allow", [])):
        where = f"{path}: allow[{i}]"
        missing = [k for k in ("id", "package", "reason", "owner", "expires") if not raw.get(k)]
        if missing:
            raise AuditError(
                f"{where} ({raw.get('id', '?')}): missing {', '.join(missing)}",
                "every exception needs an id, package, reason, owner and expiry date",
            )
        expires = raw["expires"]
        if not isinstance(expires, date):
            raise AuditError(
                f"{where}: expires must be a date, got {expires!r}",
                "write it unquoted: expires = 2027-01-31",
            )
        unknown = set(raw) - {"id", "package", "reason", "owner", "expires"}
        if unknown:
            raise AuditError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))}",
                "allowed: id, package, reason, owner, expires",
            )
        entries.append(
            AllowEntry(raw["id"], raw["package"].lower(), raw["reason"], raw["owner"], expires)
        )
    return tuple(entries)


def apply_policy(
    findings: Sequence[Finding], allowlist: Sequence[AllowEntry], today: date
) -> PolicyResult:
    blocking: list[Finding] = []
    suppressed: list[tuple[Finding, AllowEntry]] = []
    expired: list[AllowEntry] = []
    used: set[int] = set()
    for finding in findings:
        match = next(
            (
                (i, e)
                for i, e in enumerate(allowlist)
                if e.id in finding.ids() and e.package == finding.package.lower()
            ),
            None,
        )
        if match is None:
            blocking.append(finding)
            continue
        i, entry = match
        used.add(i)
        if entry.expires < today:
            blocking.append(finding)
            if entry not in expired:
                expired.append(entry)
        else:
            suppressed.append((finding, entry))
    stale = tuple(e for i, e in enumerate(allowlist) if i not in used)
    return PolicyResult(tuple(blocking), tuple(suppressed), tuple(expired), stale)


def audit_argv(
    requirements: Path,
    *,
    service: str,
    osv_url: str | None,
    hashed: bool,
    output: Path,
    fmt: str = "json",
    pip_audit: str = "pip-audit",
) -> list[str]:
    argv = [
        pip_audit,
        "-r",
        str(requirements),
        "--strict",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "--format",
        fmt,
        "--output",
        str(output),
        "--vulnerability-service",
        service,
        "--timeout",
        "30",
    ]
    argv += ["--require-hashes"] if hashed else ["--no-deps"]
    if osv_url:
        argv += ["--osv-url", osv_url]
    return argv


def find_pip_audit() -> str:
    """pip-audit beside this interpreter (the project venv), else from PATH."""
    sibling = Path(sys.executable).with_name("pip-audit")
    return str(sibling) if sibling.exists() else "pip-audit"


def parse_findings(report: dict[str, Any]) -> tuple[int, tuple[Finding, ...]]:
    deps = report.get("dependencies", [])
    findings = tuple(
        Finding(
            d["name"],
            d.get("version", "?"),
            v["id"],
            tuple(v.get("aliases", [])),
            tuple(v.get("fix_versions", [])),
        )
        for d in deps
        for v in d.get("vulns", [])
    )
    return len(deps), findings


def run_audit(
    requirements: Path,
    *,
    service: str,
    osv_url: str | None,
    hashed: bool,
    workdir: Path,
    sbom: bool = True,
    pip_audit: str | None = None,
) -> AuditRun:
    """One pip-audit run (JSON), plus a CycloneDX SBOM of the same requirements."""
    import time

    if service not in SERVICES:
        raise AuditError(
            f"unknown vulnerability service {service!r}",
            f"use one of {', '.join(SERVICES)} (and --osv-url for a mirror)",
        )
    pip_audit = pip_audit or find_pip_audit()
    workdir.mkdir(parents=True, exist_ok=True)
    stem = requirements.name.removesuffix(".txt")
    out = workdir / f"{stem}.audit.json"
    out.unlink(missing_ok=True)  # a result left by an earlier run must never count
    start = time.monotonic()
    result = proc.run(
        audit_argv(
            requirements,
            service=service,
            osv_url=osv_url,
            hashed=hashed,
            output=out,
            pip_audit=pip_audit,
        )
    )
    endpoint = osv_url or ("https://api.osv.dev/v1/query" if service == "osv" else "PyPI JSON API")
    try:
        report = json.loads(out.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        # pip-audit without a readable service writes nothing; never read that as "clean"
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise AuditError(
            f"audit of {requirements} could not run against {endpoint} "
            f"(exit {result.returncode}): {tail}",
            "the vulnerability service must be reachable; for air-gapped hosts pass "
            "--osv-url of a mirror (or --snapshot DIR to serve one locally)",
        ) from None
    count, findings = parse_findings(report)
    sbom_path: Path | None = None
    if sbom:
        sbom_path = workdir / f"{stem}.cdx.json"
        sbom_path.unlink(missing_ok=True)
        sb = proc.run(
            audit_argv(
                requirements,
                service=service,
                osv_url=osv_url,
                hashed=hashed,
                output=sbom_path,
                fmt="cyclonedx-json",
                pip_audit=pip_audit,
            )
        )
        if not sbom_path.exists():
            raise AuditError(
                f"SBOM for {requirements} not written: {sb.stderr[-300:]}", "rerun the audit"
            )
    return AuditRun(
        str(requirements), count, findings, sbom_path, round(time.monotonic() - start, 1)
    )


@dataclass
class Summary:
    rows: list[tuple[str, int, int, str]] = field(default_factory=list)

    def add(self, run: AuditRun, policy: PolicyResult) -> None:
        fixes = "; ".join(
            f"{f.package} {f.version}: {f.vuln_id} -> {', '.join(f.fix_versions) or 'no fix'}"
            for f in policy.blocking
        )
        self.rows.append((run.target, run.packages, len(policy.blocking), fixes or "-"))

    def table(self) -> str:
        lines = [
            "| target | packages | blocking vulnerabilities | fix versions |",
            "|---|---|---|---|",
        ]
        lines += [f"| {t} | {n} | {v} | {f} |" for t, n, v, f in self.rows]
        return "\n".join(lines)


def requirements_from_packages(packages: dict[str, str]) -> str:
    """`name==version` lines of what an image really holds (from the smoke probe)."""
    return "".join(f"{n}=={v}\n" for n, v in sorted(packages.items()))
