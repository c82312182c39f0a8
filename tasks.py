"""Invoke tasks: thin; each parses flags and calls one aibase function.

Common flags: --config (AIBASE_CONFIG, default images.toml), --registry (AIBASE_REGISTRY),
--repository (AIBASE_REPOSITORY), --platforms (AIBASE_PLATFORMS), --base-mirror
(AIBASE_BASE_MIRROR). Precedence: flag > environment > images.toml.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from aibase import log
from aibase.config import Config, Overrides, VariantConfig, load_config
from aibase.errors import AibaseError, ConfigError

F = TypeVar("F", bound=Callable[..., Any])
COMMON_HELP = {
    "config": "config file (default: AIBASE_CONFIG or images.toml)",
    "registry": "target registry host[:port] (default: AIBASE_REGISTRY or images.toml)",
    "repository": "image repository (default: AIBASE_REPOSITORY or images.toml)",
    "platforms": "comma-separated platforms (default: AIBASE_PLATFORMS or images.toml)",
    "base_mirror": "redirect base images to this mirror prefix (default: AIBASE_BASE_MIRROR)",
    "variant": "variant name(s), comma-separated (default: all)",
    "dry_run": "print every command in order and change nothing",
}
DEFAULT_CA = Path("/etc/ssl/certs/ca-certificates.crt")
DEFAULT_REGISTRY = "localhost:5000"  # the embedded default: started on demand
CONFIG_KEYS = ("config", "registry", "repository", "platforms", "base_mirror")


def _help(*keys: str, **extra: str) -> dict[str, str]:
    """Help text for the named common flags plus task-specific ones."""
    return {k: COMMON_HELP[k] for k in keys} | extra


def fail_cleanly(fn: F) -> F:
    """AibaseError -> one message on stderr and exit 1 (no traceback for expected failures)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AibaseError as exc:
            log.info(f"error: {exc.render()}")
            raise Exit(code=1) from None

    return wrapper  # type: ignore[return-value]


def _config(
    config: str, registry: str, repository: str, platforms: str, base_mirror: str
) -> Config:
    return load_config(
        config or None,
        Overrides(registry or None, repository or None, platforms or None, base_mirror or None),
    )


def _one_variant(cfg: Config, name: str) -> VariantConfig:
    if not name:
        raise ConfigError("this task needs --variant", f"one of: {', '.join(cfg.variants)}")
    return cfg.variant(name)


def _ca_bundle(ca_bundle: str) -> Path | None:
    """CA bundle for TLS inside builds: flag > AIBASE_CA_BUNDLE > the host's trust store."""
    value = ca_bundle or os.environ.get("AIBASE_CA_BUNDLE", "")
    if value == "none":
        return None
    path = Path(value) if value else DEFAULT_CA
    if value and not path.is_file():
        raise ConfigError(f"CA bundle {path} not found", "pass an existing file or 'none'")
    return path if path.is_file() else None


def _ensure_registry(cfg: Config, dry_run: bool = False) -> None:
    from aibase import localregistry

    if not dry_run:
        localregistry.ensure_registry(cfg.registry, start_if_default=DEFAULT_REGISTRY)


@task(help=_help(*CONFIG_KEYS))
@fail_cleanly
def doctor(
    c: Context,
    config: str = "",
    registry: str = "",
    repository: str = "",
    platforms: str = "",
    base_mirror: str = "",
) -> None:
    """Check engine, buildx, containerd store, QEMU platforms, registry and disk."""
    from aibase import buildx, localregistry
    from aibase import doctor as doc

    cfg = _config(config, registry, repository, platforms, base_mirror)
    facts = buildx.gather_engine_facts()
    checks = doc.evaluate(facts, cfg, localregistry.answers(cfg.registry), doc.free_disk_gb())
    print(doc.render(checks))
    if not all(ch.ok for ch in checks):
        raise Exit("doctor: the host is not ready (see the FAIL lines)", code=1)


@task(
    name="registry-up",
    help={
        "registry": "loopback host:port (default from the config)",
        "config": COMMON_HELP["config"],
    },
)
@fail_cleanly
def registry_up(c: Context, registry: str = "", config: str = "") -> None:
    """Start the local registry (registry:2, or Debian's docker-registry) unless it answers."""
    from aibase import localregistry

    cfg = _config(config, registry, "", "", "")
    localregistry.start_registry(cfg.registry)


@task(
    name="registry-down",
    help={
        "registry": "loopback host:port (default from the config)",
        "config": COMMON_HELP["config"],
    },
)
@fail_cleanly
def registry_down(c: Context, registry: str = "", config: str = "") -> None:
    """Stop the local registry that registry-up started."""
    from aibase import localregistry

    cfg = _config(config, registry, "", "", "")
    print("stopped" if localregistry.stop_registry(cfg.registry) else "nothing to stop")


@task(
    help={
        "check": "only check that every lock is present and matches its inputs (offline)",
        "allow_missing": "with --check: cells (variant/os/arch, comma-separated) whose lock may "
        "be absent: a known gap, printed, never silently passed",
        "variant": COMMON_HELP["variant"],
        "platforms": COMMON_HELP["platforms"],
        "config": COMMON_HELP["config"],
    }
)
@fail_cleanly
def lock(
    c: Context,
    check: bool = False,
    allow_missing: str = "",
    variant: str = "",
    platforms: str = "",
    config: str = "",
) -> None:
    """Write hash-locked requirements per variant x platform (uv, cross-platform)."""
    from aibase import lock as lk
    from aibase.errors import LockError

    cfg = _config(config, "", "", platforms, "")
    cells = lk.lock_cells(cfg.select(variant), cfg.platforms)
    if check:
        allowed = {a.strip() for a in allow_missing.split(",") if a.strip()}
        states = [lk.check_lock(v, s) for v, s in cells]
        bad = []
        for st in states:
            gap = st.state == "missing" and f"{st.variant}/{st.platform}" in allowed
            note = " (allowed by --allow-missing: known gap)" if gap else ""
            print(f"{st.variant:<10} {st.platform:<12} {st.state:<12} {st.path}{note}")
            if not st.ok and not gap:
                bad.append(st)
        if bad:
            raise LockError(f"{len(bad)} lock(s) missing or stale", "run `invoke lock` and commit")
        return
    failures: list[str] = []
    for v, spec in cells:
        try:
            print(f"locked {v.name}/{spec.platform}: {lk.write_lock(v, spec)}")
        except LockError as exc:  # try every cell, then fail naming each broken one
            log.info(f"error: {exc.render()}")
            failures.append(f"{v.name}/{spec.platform}")
    if failures:
        raise LockError(f"lock failed for: {', '.join(failures)}", "see the messages above")


@task(
    name="bases-bootstrap",
    help={
        "mirror": "mirror prefix to push the stand-ins to (default: AIBASE_BASE_MIRROR or "
        "<registry>/mirror)",
        "config": COMMON_HELP["config"],
        "registry": COMMON_HELP["registry"],
    },
)
@fail_cleanly
def bases_bootstrap(c: Context, mirror: str = "", config: str = "", registry: str = "") -> None:
    """Build STAND-IN bases (Debian 12 + python3.11) for every base in the config and push
    them as multi-arch indexes to the mirror. For offline hosts and tests only."""
    from aibase import bases

    cfg = _config(config, registry, "", "", "")
    target = mirror or os.environ.get("AIBASE_BASE_MIRROR") or f"{cfg.registry}/mirror"
    _ensure_registry(cfg)
    for ref in bases.bootstrap_standins(cfg, target, cfg.platforms):
        print(f"stand-in pushed: {ref}")
    print(f"use them with: export AIBASE_BASE_MIRROR={target}")


def _build_flags(*keys: str) -> dict[str, str]:
    return _help(*keys) | {
        "ca_bundle": "CA bundle passed as a BuildKit secret (default: AIBASE_CA_BUNDLE or the "
        "host trust store; 'none' to skip)",
        "compression": "layer compression for pushes: gzip (default) or zstd (faster, needs "
        "Docker >= 23 / containerd >= 1.5 on the pulling side)",
    }


@task(
    help=_build_flags("variant", "dry_run", "config", "registry", "repository", "base_mirror")
    | {
        "platform": "one platform, e.g. linux/arm64",
        "push": "push under the cell's immutable, never-promoted tag and write "
        "build/cells/<cell>.json (digest, size, seconds)",
        "load": "load a single-platform image into the local engine (development)",
        "no_cache": "rebuild every step, ignoring the build cache (leaves a second cache "
        "record per step: later rebuilds may re-push unchanged-looking layers)",
    }
)
@fail_cleanly
def build(
    c: Context,
    variant: str = "",
    platform: str = "",
    push: bool = False,
    load: bool = False,
    dry_run: bool = False,
    no_cache: bool = False,
    ca_bundle: str = "",
    compression: str = "",
    config: str = "",
    registry: str = "",
    repository: str = "",
    base_mirror: str = "",
) -> None:
    """Build one cell (variant x platform): what a CI matrix job runs."""
    from aibase import pipeline
    from aibase.plan import Cell

    cfg = _config(config, registry, repository, "", base_mirror)
    v = _one_variant(cfg, variant)
    if not platform:
        raise ConfigError("build needs --platform", f"one of: {', '.join(v.platforms)}")
    v.platform(platform)
    if push == load:
        raise ConfigError("build needs exactly one of --push or --load", "pick one")
    if push:
        _ensure_registry(cfg, dry_run)
    ctx = pipeline.make_context(
        cfg, ca_bundle=_ca_bundle(ca_bundle), compression=compression or None, no_cache=no_cache
    )
    pipeline.build_cell(cfg, v, Cell(v.name, platform), ctx, push=push, load=load, dry_run=dry_run)


@task(help=_help("variant", "dry_run", "config", "registry", "repository", "platforms"))
@fail_cleanly
def merge(
    c: Context,
    variant: str = "",
    dry_run: bool = False,
    config: str = "",
    registry: str = "",
    repository: str = "",
    platforms: str = "",
) -> None:
    """Merge the cell results of a variant into one index under its immutable tags."""
    from aibase import pipeline

    cfg = _config(config, registry, repository, platforms, "")
    pipeline.merge_variant(
        cfg, _one_variant(cfg, variant), pipeline.make_context(cfg), dry_run=dry_run
    )


@task(
    help=_help("variant", "config", "registry", "repository", "platforms")
    | {
        "ref": "verify this ref instead of the merged index (any HOST/REPO:TAG or @sha256:...)",
        "smoke": "also smoke-test each platform (needed before promote)",
        "revision": "expected revision label (default: HEAD when verifying "
        "the merged index; unchecked for --ref)",
    }
)
@fail_cleanly
def verify(
    c: Context,
    variant: str = "",
    ref: str = "",
    smoke: bool = True,
    revision: str = "",
    config: str = "",
    registry: str = "",
    repository: str = "",
    platforms: str = "",
) -> None:
    """Check an index in the registry: platforms, config arch/os, labels, revision, size."""
    from aibase import pipeline
    from aibase.verify import raise_if_failed

    cfg = _config(config, registry, repository, platforms, "")
    v = _one_variant(cfg, variant)
    own = not ref
    if own:
        digest = pipeline.read_state(cfg, v).get("index_digest")
        if not digest:
            raise ConfigError(
                f"no merged index recorded for {variant}",
                f"run invoke merge --variant {variant}, or pass --ref",
            )
        ref = f"{cfg.image}@{digest}"
        revision = revision or pipeline.git_revision()
    result = pipeline.verify_ref(cfg, v, ref, revision or None)
    raise_if_failed(result)
    print(f"verified {result.ref} ({result.index_digest})")
    if smoke:
        smoked = pipeline.smoke_index(cfg, v, result)
        if own:
            pipeline.record_verified(cfg, v, result, smoked)
        bad = [f"{p}: {x}" for p, probs in smoked.items() for x in probs]
        if bad:
            from aibase.errors import VerifyError

            raise VerifyError("smoke failed:\n  - " + "\n  - ".join(bad), "fix the image")
        print(f"smoke ok on {', '.join(smoked)}")


@task(help=_help("variant", "dry_run", "config", "registry", "repository", "platforms"))
@fail_cleanly
def promote(
    c: Context,
    variant: str = "",
    dry_run: bool = False,
    config: str = "",
    registry: str = "",
    repository: str = "",
    platforms: str = "",
) -> None:
    """Move the floating tag to the verified, smoke-tested index and read it back."""
    from aibase import pipeline

    cfg = _config(config, registry, repository, platforms, "")
    v = _one_variant(cfg, variant)
    revision = pipeline.git_revision()
    out = pipeline.promote_variant(cfg, v, dry_run=dry_run, revision=revision)
    if out:
        print(f"{out['tag']} -> {out['digest']} (was {out['previous']})")


@task(
    name="build-all",
    help=_build_flags("variant", "dry_run", *CONFIG_KEYS)
    | {"no_promote": "stop after smoke: build candidates, leave the floating tags alone"},
)
@fail_cleanly
def build_all(
    c: Context,
    variant: str = "",
    dry_run: bool = False,
    no_promote: bool = False,
    ca_bundle: str = "",
    compression: str = "",
    config: str = "",
    registry: str = "",
    repository: str = "",
    platforms: str = "",
    base_mirror: str = "",
) -> None:
    """Every variant x platform: build, merge, verify, smoke, promote, report (fail-closed)."""
    from aibase import pipeline

    cfg = _config(config, registry, repository, platforms, base_mirror)
    variants = cfg.select(variant)
    if not dry_run:
        from aibase import buildx

        buildx.require_engine()
    _ensure_registry(cfg, dry_run)
    ctx = pipeline.make_context(
        cfg, ca_bundle=_ca_bundle(ca_bundle), compression=compression or None
    )
    pipeline.build_all(
        cfg,
        variants,
        ctx,
        dry_run=dry_run,
        promote=not no_promote,
        report_dir=pipeline.out_dir() / "reports",
    )


@task(
    help=_help("variant", "config")
    | {
        "service": "vulnerability service: osv or pypi (public services: chosen explicitly; "
        "default: AIBASE_AUDIT_SERVICE)",
        "osv_url": "an OSV-compatible /v1/query URL (a mirror) instead of the public one",
        "snapshot": "serve this advisory snapshot (pypa/advisory-database layout) on "
        "127.0.0.1 for the run: air-gapped audits",
        "image": "also audit what this image really holds (its installed distributions)",
        "platform": "platform of --image (default: every platform in the config)",
        "allowlist": "policy file (default: audit-allowlist.toml)",
        "today": "evaluate expiry dates as of this day (YYYY-MM-DD; default: today)",
    }
)
@fail_cleanly
def audit(
    c: Context,
    variant: str = "",
    service: str = "",
    osv_url: str = "",
    snapshot: str = "",
    image: str = "",
    platform: str = "",
    allowlist: str = "audit-allowlist.toml",
    today: str = "",
    config: str = "",
) -> None:
    """pip-audit every committed lock (and optionally an image), --strict, with the allowlist
    policy; writes JSON results and CycloneDX SBOMs to build/audit/ and one summary table."""
    import contextlib
    import tempfile
    from datetime import date

    from aibase import audit as au
    from aibase import containers, pipeline
    from aibase.osv_mirror import serve

    cfg = _config(config, "", "", "", "")
    osv_url = osv_url or os.environ.get("AIBASE_AUDIT_OSV_URL", "")
    service = (
        service
        or os.environ.get("AIBASE_AUDIT_SERVICE", "")
        or ("osv" if osv_url or snapshot else "")
    )
    if not service:
        raise au.AuditError(
            "no vulnerability service chosen (nothing is contacted by default)",
            "pass --service osv (public OSV API) or --service pypi, --osv-url URL of a mirror, "
            "or --snapshot DIR to serve an advisory snapshot on loopback",
        )
    policy = au.load_allowlist(Path(allowlist))
    when = date.fromisoformat(today) if today else date.today()
    workdir = pipeline.out_dir() / "audit"
    summary = au.Summary()
    blocking = 0
    used: set[au.AllowEntry] = set()
    with contextlib.ExitStack() as stack:
        if snapshot:
            if not Path(snapshot).is_dir():
                raise au.AuditError(
                    f"advisory snapshot {snapshot} not found",
                    "pass the folder holding <package>/<ID>.yaml (e.g. shared/advisories/pypa)",
                )
            osv_url = stack.enter_context(serve(Path(snapshot)))
            log.info(f"serving the advisory snapshot {snapshot} at {osv_url}")
        targets: list[tuple[Path, bool]] = []
        for v in cfg.select(variant):
            for p in cfg.platforms:
                lock_file = v.lock_file(p)
                if lock_file.exists():
                    targets.append((lock_file, True))
                else:
                    log.info(f"not audited: {v.name}/{p} has no committed lock ({lock_file})")
        if image:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            for p in [x for x in platform.split(",") if x] or list(cfg.platforms):
                run = containers.run_probe(image, p)
                reqs = tmp / f"image-{p.replace('/', '-')}.txt"
                reqs.write_text(au.requirements_from_packages(run.report["packages"]))
                targets.append((reqs, False))
        for path, hashed in targets:
            result = au.run_audit(
                path, service=service, osv_url=osv_url or None, hashed=hashed, workdir=workdir
            )
            verdict = au.apply_policy(result.findings, policy, when)
            used |= {e for _, e in verdict.suppressed} | set(verdict.expired)
            summary.add(result, verdict)
            blocking += len(verdict.blocking)
            for finding, entry in verdict.suppressed:
                log.info(
                    f"allowed until {entry.expires}: {finding.package} {finding.vuln_id} "
                    f"({entry.owner}: {entry.reason})"
                )
            for entry in verdict.expired:
                log.info(
                    f"EXPIRED allowlist entry {entry.id} ({entry.package}) since "
                    f"{entry.expires}: no longer suppresses"
                )
    for entry in policy:
        if entry not in used:
            log.info(
                f"stale allowlist entry {entry.id} ({entry.package}): matches nothing, remove it"
            )
    print(summary.table())
    print(f"SBOMs and JSON results: {workdir}")
    if blocking:
        raise au.AuditError(
            f"{blocking} vulnerabilit{'y' if blocking == 1 else 'ies'} not allowed by the policy",
            f"upgrade to a fix version, or add a reviewed entry with an expiry to {allowlist}",
        )


@task(
    name="bases-update",
    help=_help("config", "base_mirror")
    | {"dry_run": "print the new pins, do not rewrite the config"},
)
@fail_cleanly
def bases_update(
    c: Context, config: str = "", base_mirror: str = "", dry_run: bool = False
) -> None:
    """Resolve each base tag's current digest (its registry, or the mirror) and pin it in the
    config: one reviewed line per base."""
    from aibase import pins

    cfg = _config(config, "", "", "", base_mirror)
    new = pins.plan_pins(cfg, cfg.base_mirror)
    text = cfg.path.read_text()
    updated = pins.rewrite_base_pins(text, new)
    changed = [
        (a, b) for a, b in zip(text.splitlines(), updated.splitlines(), strict=True) if a != b
    ]
    for old, now in changed:
        print(f"- {old.strip()}\n+ {now.strip()}")
    if not changed:
        print("base pins are up to date")
    elif not dry_run:
        cfg.path.write_text(updated)
        print(f"rewrote {len(changed)} line(s) in {cfg.path}")
