"""pip-audit runs that cannot pass silently, and the audit of every lock (and image).

Every run uses --strict (a package the service could not check fails the audit instead of
being skipped) and, for locks, --disable-pip --require-hashes. Findings then go through the
allowlist policy (`allowlist`). "Could not run" (AuditError) and "found vulnerabilities"
(VulnerabilitiesFound) are different failures with different exit codes.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from aibase import engine, log, proc
from aibase.allowlist import Finding, PolicyResult, apply_policy, load_allowlist, stale_entries
from aibase.config import VariantConfig
from aibase.errors import AuditError, VulnerabilitiesFound
from aibase.osv_mirror import serve
from aibase.settings import AUDIT_SERVICES as SERVICES


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


@dataclass(frozen=True)
class AuditRequest:
    variants: Sequence[VariantConfig]
    platforms: Sequence[str]
    service: str | None
    osv_url: str | None
    snapshot: Path | None  # an advisory database served on loopback for the run
    image: str | None  # also audit what this image really holds
    image_platforms: Sequence[str]
    allowlist: Path
    today: date
    workdir: Path


def audit_all(req: AuditRequest) -> Summary:
    """Every committed lock of the variants (and the image), one policy, one summary."""
    service = req.service or ("osv" if req.osv_url or req.snapshot else None)
    if service is None:
        raise AuditError(
            "no vulnerability service chosen (nothing is contacted by default)",
            "pass --service osv (public OSV API) or --service pypi, --osv-url URL of a mirror, "
            "or --snapshot DIR to serve an advisory snapshot on loopback",
        )
    policy = load_allowlist(req.allowlist)
    summary = Summary()
    results: list[PolicyResult] = []
    with contextlib.ExitStack() as stack:
        osv_url = req.osv_url
        if req.snapshot is not None:
            if not req.snapshot.is_dir():
                raise AuditError(
                    f"advisory snapshot {req.snapshot} not found",
                    "pass the folder holding <package>/<ID>.yaml (e.g. shared/advisories/pypa)",
                )
            osv_url = stack.enter_context(serve(req.snapshot))
            log.info(f"serving the advisory snapshot {req.snapshot} at {osv_url}")
        targets: list[tuple[Path, bool]] = []
        for v in req.variants:
            for p in req.platforms:
                if v.lock_file(p).exists():
                    targets.append((v.lock_file(p), True))
                else:
                    log.info(f"not audited: {v.name}/{p} has no committed lock ({v.lock_file(p)})")
        if req.image:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            for p in req.image_platforms:
                report = engine.run_probe(req.image, p).report
                reqs = tmp / f"image-{p.replace('/', '-')}.txt"
                reqs.write_text(requirements_from_packages(report["packages"]))
                targets.append((reqs, False))
        for path, hashed in targets:
            with log.step(f"audit {path.name}"):
                run = run_audit(
                    path, service=service, osv_url=osv_url, hashed=hashed, workdir=req.workdir
                )
            verdict = apply_policy(run.findings, policy, req.today)
            results.append(verdict)
            summary.add(run, verdict)
            _explain(verdict)
    for entry in stale_entries(policy, results):
        log.info(f"stale allowlist entry {entry.id} ({entry.package}): matches nothing, remove it")
    print(summary.table())
    log.info(f"SBOMs and JSON results: {req.workdir}")
    blocking = sum(len(r.blocking) for r in results)
    if blocking:
        raise VulnerabilitiesFound(
            f"{blocking} vulnerabilit{'y' if blocking == 1 else 'ies'} not allowed by the policy",
            f"upgrade to a fix version, or add a reviewed entry with an expiry to {req.allowlist}",
        )
    return summary


def _explain(verdict: PolicyResult) -> None:
    for finding, entry in verdict.suppressed:
        log.info(
            f"allowed until {entry.expires}: {finding.package} {finding.vuln_id} "
            f"({entry.owner}: {entry.reason})"
        )
    for entry in verdict.expired:
        log.info(
            f"EXPIRED allowlist entry {entry.id} ({entry.package}) since {entry.expires}: "
            "no longer suppresses"
        )
