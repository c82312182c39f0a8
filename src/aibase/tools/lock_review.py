"""`./ai audit --base REV`: a pull request's dependency review. Each lock as REV holds it
(`git show REV:path`) against the working tree: every package added, removed, moved to
another version or re-hashed, each one it brings in annotated with its advisories from the
configured audit source (pip-audit, as `./ai audit` runs it) and the allowlist's word on
them. Markdown on stdout and in the job summary; an advisory the allowlist does not accept
fails the review, naming the package, its version, the advisory and the fix."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from packaging.utils import canonicalize_version

from aibase import github, log
from aibase.audit.allowlist import AllowEntry, Finding, apply_policy, load_allowlist
from aibase.audit.gate import AuditRequest, open_source
from aibase.audit.pipaudit import (
    check_service,
    describe_finding,
    requirements_from_packages,
    run_audit,
)
from aibase.build.lock_format import lock_problem, parse_lock, split_blocks
from aibase.errors import AuditError, ConfigError, LockError, VulnerabilitiesFound
from aibase.host import git
from aibase.names import normalize_name

_HASH = re.compile(r"--hash=sha256:[0-9a-f]+")


@dataclass(frozen=True)
class Change:
    lock: str  # the lock's name
    package: str  # normalized
    before: str | None  # None: added
    after: str | None  # None: removed

    @property
    def kind(self) -> str:
        if self.before is None:
            return "added"
        if self.after is None:
            return "removed"
        return "re-hashed" if self.before == self.after else "changed"


@dataclass(frozen=True)
class Annotated:
    change: Change
    blocking: tuple[Finding, ...] = ()
    accepted: tuple[tuple[Finding, AllowEntry], ...] = ()
    expired: tuple[AllowEntry, ...] = ()


def diff_lock(lock: str, before: str | None, after: str | None) -> list[Change]:
    """What changed in one lock (None: the lock did not exist), by package name. A version
    kept with other hashes is a change too: the same release, other files."""
    old, new = parse_lock(before or ""), parse_lock(after or "")
    old_blocks, new_blocks = split_blocks(before or ""), split_blocks(after or "")
    changes = []
    for name in sorted(old.keys() | new.keys()):
        was = old[name].version if name in old else None
        now = new[name].version if name in new else None
        if was == now:
            hashes = [set(_HASH.findall(b.get(name, ""))) for b in (old_blocks, new_blocks)]
            if hashes[0] == hashes[1]:
                continue
        changes.append(Change(lock, name, was, now))
    return changes


def audit_batches(changes: Sequence[Change]) -> list[dict[str, str]]:
    """The versions to audit (name -> version), in as few requirement sets as hold each name
    once: locks may move one package to different versions (a CPU and a CUDA torch)."""
    batches: list[dict[str, str]] = []
    for pair in sorted({(c.package, c.after) for c in changes if c.after is not None}):
        name, version = pair
        home = next((b for b in batches if name not in b), None)
        if home is None:
            home = {}
            batches.append(home)
        home[name] = version
    return batches


def annotate(
    changes: Sequence[Change],
    findings: Mapping[tuple[str, str], Sequence[Finding]],
    allowlist: Sequence[AllowEntry],
    today: date,
) -> list[Annotated]:
    """Each change with its version's findings (keyed by version_key), sorted by the
    allowlist (a removed package brings nothing in: nothing to annotate)."""
    out = []
    for c in changes:
        found = findings.get(version_key(c.package, c.after), ()) if c.after else ()
        verdict = apply_policy(found, allowlist, today)
        out.append(Annotated(c, verdict.blocking, verdict.suppressed, verdict.expired))
    return out


def _advisories(a: Annotated) -> str:
    if a.change.after is None:
        return "-"
    fixed = {f: ", ".join(f.fix_versions) or "no release yet" for f in a.blocking}
    cells = [f"**NOT ALLOWED** {describe_finding(f)}, fixed in {fixed[f]}" for f in a.blocking]
    cells += [
        f"accepted until {e.expires} ({e.owner}): {describe_finding(f)}" for f, e in a.accepted
    ]
    cells += [f"(allowlist entry {e.id} expired {e.expires})" for e in a.expired]
    return "<br>".join(cells) or "none known"


def render_review(base: str, source: str, locks: Sequence[str], rows: Sequence[Annotated]) -> str:
    """The review as Markdown: one table per lock that changed, the unchanged ones named."""
    lines = [f"### ai-base lock review since `{base}`", "", f"advisories: {source}"]
    changed = [lock for lock in locks if any(r.change.lock == lock for r in rows)]
    for lock in changed:
        lines += ["", f"#### {lock}", "", "| package | change | before | after | advisories |"]
        lines.append("|---|---|---|---|---|")
        lines += [
            f"| {r.change.package} | {r.change.kind} | {r.change.before or '-'} | "
            f"{r.change.after or '-'} | {_advisories(r)} |"
            for r in rows
            if r.change.lock == lock
        ]
    unchanged = [lock for lock in locks if lock not in changed]
    if unchanged:
        lines += ["", f"unchanged: {', '.join(unchanged)}"]
    if not changed:
        lines += ["", "no lock changed: nothing to review"]
    return "\n".join(lines) + "\n"


def refusal(rows: Sequence[Annotated], allowlist: Path) -> VulnerabilitiesFound | None:
    """The failure for changes bringing advisories the allowlist does not accept, or None."""
    bad = [(r.change, f) for r in rows for f in r.blocking]
    if not bad:
        return None
    named = "; ".join(f"{c.lock}: {c.package} {c.after} has {describe_finding(f)}" for c, f in bad)
    fixes = "; ".join(
        f"{c.package} to {' or '.join(f.fix_versions)}"
        if f.fix_versions
        else f"{c.package}: no fixed release yet, keep the version before"
        for c, f in bad
    )
    return VulnerabilitiesFound(
        f"{len(bad)} advisor{'y' if len(bad) == 1 else 'ies'} the allowlist does not accept, "
        f"brought in by this change: {named}",
        f"move {fixes} (./ai update NAME==VERSION re-locks), or add a reviewed entry with an "
        f"owner and an expiry to {allowlist}",
    )


def check_changed_lock(req: AuditRequest, path: Path, text: str) -> None:
    """A changed lock is reviewed only as a build would install it: a line the review cannot
    read as a pin (a URL, an option, an edited body) is refused here, never skipped."""
    specs = [
        v.platform(p)
        for v in req.variants
        for p in v.platforms
        if v.lock_file(p).resolve() == path.resolve()
    ]
    if not specs:
        raise LockError(
            f"lock {path.name} changed, but no configured variant and platform builds it",
            "remove it, or add its platform to images.toml and run `./ai lock`",
        )
    problem = lock_problem(text, specs[0])
    if problem:
        raise LockError(
            f"lock {path.name} {problem}: the review cannot vouch for it",
            "write locks with `./ai lock` only, then push again",
        )


def lock_paths(req: AuditRequest, base: str) -> list[Path]:
    """Every lock of the variants, in the working tree, the config, or at `base`."""
    paths = {v.lock_file(p) for v in req.variants for p in req.platforms if p in v.platforms}
    for v in req.variants:
        names = {p.name for p in v.lock_dir.glob(f"{v.name}-*.txt")}
        names |= set(git.files_at(v.lock_dir, base)) if v.lock_dir.is_dir() else set()
        paths |= {v.lock_dir / n for n in names if n.startswith(f"{v.name}-")}
    return sorted(p for p in paths if p.suffix == ".txt")


def audit_changes(
    req: AuditRequest, batches: Sequence[Mapping[str, str]]
) -> tuple[str, dict[tuple[str, str], list[Finding]]]:
    """(where the advisories came from, the findings by (name, version)): pip-audit of each
    batch against the configured source, after its canary. No batch: nothing is contacted.
    A finding for a version the review did not ask about fails closed (never dropped)."""
    if not batches:
        return "nothing to audit (no package added or moved): no service contacted", {}
    asked = {version_key(n, v) for b in batches for n, v in b.items()}
    findings: dict[tuple[str, str], list[Finding]] = {}
    with open_source(req) as (service, osv_url):
        with log.step("check the vulnerability service (canary)"):
            check_service(service, osv_url, req.workdir)
        req.workdir.mkdir(parents=True, exist_ok=True)
        for i, batch in enumerate(batches, 1):
            reqs = req.workdir / f"review-{i}.txt"
            reqs.write_text(requirements_from_packages(batch))
            with log.step(f"audit {len(batch)} changed package(s) ({reqs.name})"):
                run = run_audit(
                    reqs,
                    service=service,
                    osv_url=osv_url,
                    hashed=False,
                    workdir=req.workdir,
                    sbom=False,
                )
            for f in run.findings:
                key = version_key(f.package, f.version)
                if key not in asked:
                    raise AuditError(
                        f"pip-audit reported {f.vuln_id} for {f.package} {f.version}, which "
                        f"the review did not ask about ({reqs})",
                        "report this: the review cannot tell which change it belongs to",
                    )
                findings.setdefault(key, []).append(f)
    where = f"the snapshot {req.snapshot}" if req.snapshot else (osv_url or "its public API")
    return f"{service} ({where})", findings


def version_key(name: str, version: str) -> tuple[str, str]:
    """A findings key: one spelling per package and per PEP 440 version (pip-audit may not
    echo a name or a version as the lock wrote it)."""
    return normalize_name(name), canonicalize_version(version)


def review_locks(req: AuditRequest, base: str) -> list[Annotated]:
    """The review of the lock changes since `base` (stdout and the job summary); raises
    VulnerabilitiesFound when a change brings an advisory the allowlist does not accept."""
    if req.image:
        raise ConfigError("--base reviews the locks' changes, not an image", "drop --image")
    allowlist = load_allowlist(req.allowlist)  # an invalid policy fails before any work
    where = next(
        (p for v in req.variants for p in (v.lock_dir, *v.lock_dir.parents) if p.is_dir()),
        Path.cwd(),
    )
    commit = git.resolve(where, base)
    texts = {
        p: (git.file_at(p, commit), p.read_text() if p.exists() else None)
        for p in lock_paths(req, commit)
    }
    texts = {p: t for p, t in texts.items() if t != (None, None)}  # a lock neither side has
    for path, (was, now) in texts.items():
        if now is not None and now != was:
            check_changed_lock(req, path, now)
    changes = [c for p, (was, now) in texts.items() for c in diff_lock(p.name, was, now)]
    source, findings = audit_changes(req, audit_batches(changes))
    rows = annotate(changes, findings, allowlist, req.today)
    markdown = render_review(base, source, [p.name for p in texts], rows)
    print(markdown)
    github.add_summary(markdown)
    error = refusal(rows, req.allowlist)
    if error is not None:
        raise error
    return rows
