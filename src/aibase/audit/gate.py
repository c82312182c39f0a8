"""The audit of every committed lock (and of what an image holds, from the SBOM attached to
it: no container): one policy, one summary. "Could not run" (AuditError) and "found
vulnerabilities" (VulnerabilitiesFound) are different failures with different exit codes; a
missing lock fails unless it is named as a known gap.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from aibase import github, log
from aibase.audit.allowlist import PolicyResult, apply_policy, load_allowlist, stale_entries
from aibase.audit.attached import attached, read_contents
from aibase.audit.osv_mirror import serve
from aibase.audit.pipaudit import (
    Summary,
    check_service,
    describe_finding,
    requirements_from_packages,
    run_audit,
)
from aibase.config.model import VariantConfig
from aibase.errors import AuditError, VulnerabilitiesFound
from aibase.registry.client import RegistryClient
from aibase.registry.refs import ImageRef, parse_ref


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
    allow_missing: Sequence[str] = ()  # cells (variant/os/arch) whose lock may be absent
    # a client for a registry host: trusts SSL_CERT_FILE and /etc/docker/certs.d/<host>/
    registry: Callable[[str], RegistryClient] = RegistryClient


def audit_all(req: AuditRequest) -> Summary:
    """Every committed lock of the variants (and the image), one policy, one summary."""
    summary = Summary()
    results: list[PolicyResult] = []
    with contextlib.ExitStack() as stack:
        service, osv_url = stack.enter_context(open_source(req))
        policy = load_allowlist(req.allowlist)
        targets = _lock_targets(req)
        with log.step("check the vulnerability service (canary)"):
            check_service(service, osv_url, req.workdir)
        if req.image:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            ref = parse_ref(req.image)
            client = stack.enter_context(req.registry(ref.api_host))
            for p in req.image_platforms:
                reqs = tmp / f"image-{p.replace('/', '-')}.txt"
                reqs.write_text(requirements_from_packages(image_packages(client, ref, p)))
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
    github.add_summary("### ai-base audit\n\n" + summary.table())
    log.info(f"SBOMs and JSON results: {req.workdir}")
    blocking = sum(len(r.blocking) for r in results)
    if blocking:
        expired = sorted({f"{e.id} ({e.package}, {e.expires})" for r in results for e in r.expired})
        raise VulnerabilitiesFound(
            f"{blocking} vulnerabilit{'y' if blocking == 1 else 'ies'} not allowed by the policy"
            + (f"; expired allowlist entries: {', '.join(expired)}" if expired else ""),
            f"upgrade to a fix version, or add (or renew, after review) an entry with an owner "
            f"and an expiry in {req.allowlist}",
        )
    return summary


@contextlib.contextmanager
def open_source(req: AuditRequest) -> Iterator[tuple[str, str | None]]:
    """The configured audit source as (service, osv_url); a snapshot is served on loopback
    while the block runs. Nothing is chosen (so nothing contacted) by default."""
    service = req.service or ("osv" if req.osv_url or req.snapshot else None)
    if service is None:
        raise AuditError(
            "no vulnerability service chosen (nothing is contacted by default)",
            "pass --service osv (public OSV API) or --service pypi, --osv-url URL of a mirror, "
            "or --snapshot DIR to serve an advisory snapshot on loopback",
        )
    if req.snapshot is None:
        yield service, req.osv_url
        return
    with serve(_advisory_db(req.snapshot)) as osv_url:
        log.info(f"serving the advisory snapshot {req.snapshot} at {osv_url}")
        yield service, osv_url


def image_packages(client: RegistryClient, ref: ImageRef, platform: str) -> dict[str, str]:
    """name -> version of the Python distributions ref's image holds for `platform`: from the
    SBOM attached to it (no container); an image without one is said so, and its layers are
    read instead (from the registry, still no container)."""
    found = attached(client, ref, platform)
    if found.facts is not None:
        log.info(f"{ref} {platform}: auditing the SBOM {found.sbom} attached to {found.image}")
        return {name: version for name, version, _ in found.facts.python}
    log.warn(
        f"{ref} {platform}: no SBOM attached to {found.image}; auditing what its layers hold "
        "(read from the registry)"
    )
    manifest = client.get_manifest(ref.repository, found.image)
    return {d.name: d.version for d in read_contents(client, ref.repository, manifest).dists}


def _explain(verdict: PolicyResult) -> None:
    for finding, entry in verdict.suppressed:
        log.info(
            f"ACCEPTED until {entry.expires}: {finding.package} {finding.version} "
            f"{describe_finding(finding)}, owner {entry.owner}: {entry.reason}"
        )
    for entry in verdict.expired:
        log.info(
            f"EXPIRED allowlist entry {entry.id} ({entry.package}) since {entry.expires}: "
            "no longer suppresses"
        )


def _advisory_db(folder: Path) -> Path:
    """The folder must look like pypa/advisory-database: <package>/<ID>.yaml|json."""
    if folder.is_dir() and (any(folder.glob("*/*.yaml")) or any(folder.glob("*/*.json"))):
        return folder
    raise AuditError(
        f"{folder} is not an advisory database (no <package>/<ID>.yaml in it)",
        "pass the folder holding <package>/<ID>.yaml, e.g. shared/advisories/pypa",
    )


def _lock_targets(req: AuditRequest) -> list[tuple[Path, bool]]:
    targets, missing = [], []
    for v in req.variants:
        for p in req.platforms:
            if v.lock_file(p).exists():
                targets.append((v.lock_file(p), True))
            elif f"{v.name}/{p}" in req.allow_missing:
                log.info(f"not audited: {v.name}/{p} has no lock (allowed by --allow-missing)")
            else:
                missing.append(f"{v.name}/{p} ({v.lock_file(p)})")
    if missing:
        raise AuditError(
            f"no lock to audit for {', '.join(missing)}",
            "run invoke lock and commit it, or name the known gap: --allow-missing VARIANT/OS/ARCH",
        )
    return targets
