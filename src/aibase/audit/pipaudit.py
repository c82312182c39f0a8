"""pip-audit runs that cannot pass silently.

Every run uses --strict (a package the service could not check fails the audit instead of
being skipped) and, for locks, --disable-pip --require-hashes. A canary (a requirement with a
known advisory) proves first that the service answers with real data.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aibase.audit.allowlist import AllowEntry, Finding, PolicyResult
from aibase.config.settings import AUDIT_SERVICES as SERVICES
from aibase.errors import AuditError
from aibase.host import proc


@dataclass(frozen=True)
class AuditRun:
    target: str  # the lock file or image audited
    packages: int
    findings: tuple[Finding, ...]
    sbom: Path | None = None
    seconds: float = 0.0


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
    if service not in SERVICES:
        raise AuditError(
            f"unknown vulnerability service {service!r}",
            f"use one of {', '.join(SERVICES)} (and --osv-url for a mirror)",
        )
    tool = pip_audit or find_pip_audit()

    def audit_into(output: Path, fmt: str) -> proc.Result:
        """One pip-audit run writing `output` (a file an earlier run left never counts)."""
        output.unlink(missing_ok=True)
        argv = audit_argv(
            requirements,
            service=service,
            osv_url=osv_url,
            hashed=hashed,
            output=output,
            fmt=fmt,
            pip_audit=tool,
        )
        return proc.run(argv, timeout=proc.QUICK * 15)

    workdir.mkdir(parents=True, exist_ok=True)
    stem = requirements.name.removesuffix(".txt")
    out = workdir / f"{stem}.audit.json"
    start = time.monotonic()
    result = audit_into(out, "json")
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
        sb = audit_into(sbom_path, "cyclonedx-json")
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
    accepted: list[tuple[str, Finding, AllowEntry]] = field(default_factory=list)

    def add(self, run: AuditRun, policy: PolicyResult) -> None:
        fixes = "; ".join(
            f"{f.package} {f.version}: {f.vuln_id} -> {', '.join(f.fix_versions) or 'no fix'}"
            for f in policy.blocking
        )
        self.rows.append((run.target, run.packages, len(policy.blocking), fixes or "-"))
        self.accepted += [(Path(run.target).name, f, e) for f, e in policy.suppressed]

    def table(self) -> str:
        lines = [
            "| target | packages | blocking vulnerabilities | fix versions |",
            "|---|---|---|---|",
        ]
        lines += [f"| {t} | {n} | {v} | {f} |" for t, n, v, f in self.rows]
        if self.accepted:  # what the images carry on purpose, and on whose word until when
            lines += [
                "",
                "| ACCEPTED vulnerability | package | target | owner | expires | reason |",
                "|---|---|---|---|---|---|",
            ]
            lines += [
                f"| {describe_finding(f)} | {f.package} {f.version} | {t} | {e.owner} | "
                f"{e.expires} | {e.reason} |"
                for t, f, e in self.accepted
            ]
        return "\n".join(lines)


def describe_finding(finding: Finding) -> str:
    """`GHSA-53q9-r3pm-6pq6 (CVE-2025-32434)`: the id the service reported, and its aliases."""
    aliases = ", ".join(sorted(finding.aliases))
    return f"{finding.vuln_id} ({aliases})" if aliases else finding.vuln_id


def requirements_from_packages(packages: Mapping[str, str]) -> str:
    """`name==version` lines of what an image holds (its SBOM, or its layers)."""
    return "".join(f"{n}=={v}\n" for n, v in sorted(packages.items()))


# A release with a long-known advisory: a service that does not report it is not one.
CANARY = ("requests", "2.25.0", {"PYSEC-2023-74", "CVE-2023-32681", "GHSA-j8r2-6x86-q33q"})


def check_service(service: str, osv_url: str | None, workdir: Path) -> None:
    """Audit the canary; the service must report its known advisory, or nothing it says
    (an empty answer above all) can be trusted."""
    name, version, ids = CANARY
    reqs = workdir / "canary-requirements.txt"
    workdir.mkdir(parents=True, exist_ok=True)
    reqs.write_text(f"{name}=={version}\n")
    where = osv_url or service
    run = run_audit(
        reqs, service=service, osv_url=osv_url, hashed=False, workdir=workdir, sbom=False
    )
    if not any(f.ids() & ids for f in run.findings):
        raise AuditError(
            f"the vulnerability service ({where}) did not report {sorted(ids)[0]} for "
            f"{name} {version}, a known advisory: it is not an advisory database, or it "
            "answers wrongly; nothing it says can be trusted",
            "point --osv-url / --snapshot at a real advisory database (the folder holding "
            "<package>/<ID>.yaml, e.g. shared/advisories/pypa)",
        )
