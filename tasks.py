"""Invoke tasks: each parses its flags and makes one library call (`invoke --list`).

Settings common to the tasks (--config, --registry, --out, ...) come from aibase.cli, with
one precedence: flag > AIBASE_* environment > images.toml > default. Place --config after
the task name: before it, `-f/--config` is Invoke's own runtime configuration.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from aibase import localregistry, pins, pipeline
from aibase.allowlist import DEFAULT_ALLOWLIST
from aibase.auditing import AuditRequest, audit_all
from aibase.bases import bootstrap_standins
from aibase.cli import BUILD, COMMON, ONE_VARIANT, SOME_VARIANTS, command, variant_of
from aibase.config import Config
from aibase.context import open_run
from aibase.doctor import run_doctor
from aibase.errors import ConfigError
from aibase.lock import check_locks, write_locks
from aibase.paths import Paths
from aibase.promote import Guards
from aibase.settings import Settings

ALLOW_ROLLBACK = "move the floating tag even to a commit older than the one it serves"
ALLOW_NARROWING = "move the floating tag even to an index with fewer platforms than it serves"


@command("config", "registry", "platforms", "debug")
def doctor(s: Settings, cfg: Config) -> None:
    """Check engine, buildx, containerd store, QEMU platforms, registry and disk."""
    run_doctor(cfg)


@command("config", "registry", "cache", "debug", name="registry-up")
def registry_up(s: Settings, cfg: Config) -> None:
    """Start the local registry (registry:2, or Debian's docker-registry) unless it answers."""
    localregistry.start_registry(cfg.registry, Paths(s.out, s.cache))


@command("config", "registry", "cache", "debug", name="registry-down")
def registry_down(s: Settings, cfg: Config) -> None:
    """Stop the local registry that registry-up started."""
    stopped = localregistry.stop_registry(cfg.registry, Paths(s.out, s.cache))
    print("stopped" if stopped else "nothing to stop")


@command(
    "config",
    "platforms",
    "debug",
    check="only check that every lock is present and matches its inputs (offline)",
    allow_missing="with --check: cells (variant/os/arch, comma-separated) whose lock may be "
    "absent: a known gap, printed, never silently passed",
    variant=SOME_VARIANTS,
)
def lock(
    s: Settings, cfg: Config, check: bool = False, allow_missing: str = "", variant: str = ""
) -> None:
    """Write hash-locked requirements per variant x platform (uv, cross-platform)."""
    if check:
        check_locks(cfg.select(variant), cfg.platforms, _split(allow_missing))
    else:
        write_locks(cfg.select(variant), cfg.platforms)


@command("config", "registry", "base_mirror", "cache", "out", "debug", name="bases-bootstrap")
def bases_bootstrap(s: Settings, cfg: Config) -> None:
    """Build STAND-IN bases (Debian 12 + python3.11) for every base in the config and push
    them as multi-arch indexes to the base mirror (default: <registry>/mirror). For offline
    hosts and tests only."""
    bootstrap_standins(cfg, Paths(s.out, s.cache))


@command(
    *BUILD,
    variant=ONE_VARIANT,
    platform="one platform, e.g. linux/arm64",
    push="push under the cell's immutable, never-promoted tag and write build/cells/<cell>.json",
    load="load a single-platform image into the local engine (development)",
    no_cache="rebuild every step, ignoring the build cache",
)
def build(
    s: Settings,
    cfg: Config,
    variant: str = "",
    platform: str = "",
    push: bool = False,
    load: bool = False,
    no_cache: bool = False,
    dry_run: bool = False,
) -> None:
    """Build one cell (variant x platform): what a CI matrix job runs."""
    v = variant_of(cfg, variant)
    if not platform or push == load:
        raise ConfigError(
            "build needs --platform and exactly one of --push or --load",
            f"e.g. invoke build --variant {v.name} --platform {next(iter(v.platforms))} --push",
        )
    with open_run(s, cfg, dry_run=dry_run, no_cache=no_cache) as ctx:
        pipeline.build_one(ctx, v, platform, push=push, dry_run=dry_run)


@command(*COMMON, "revision", variant=ONE_VARIANT)
def merge(s: Settings, cfg: Config, variant: str = "", dry_run: bool = False) -> None:
    """Merge the cell records of a variant into one index under an immutable tag."""
    with open_run(s, cfg, dry_run=dry_run) as ctx:
        pipeline.merge_one(ctx, variant_of(cfg, variant), dry_run=dry_run)


@command(
    *COMMON,
    "revision",
    "require_gpu",
    variant=ONE_VARIANT,
    ref="verify this ref instead of the merged index (REPO:TAG or REPO@sha256:...; Docker Hub "
    "names as docker writes them); its revision label is checked only with --revision",
    smoke="also smoke-test each platform (needed before promote)",
)
def verify(s: Settings, cfg: Config, variant: str = "", ref: str = "", smoke: bool = True) -> None:
    """Check an index in the registry: platforms, config arch/os, labels, revision, size."""
    with open_run(s, cfg) as ctx:
        pipeline.verify_one(ctx, variant_of(cfg, variant), ref or None, smoke=smoke)


@command(
    *COMMON,
    "revision",
    variant=ONE_VARIANT,
    allow_rollback=ALLOW_ROLLBACK,
    allow_narrowing=ALLOW_NARROWING,
)
def promote(
    s: Settings,
    cfg: Config,
    variant: str = "",
    allow_rollback: bool = False,
    allow_narrowing: bool = False,
    dry_run: bool = False,
) -> None:
    """Move the floating tag to the verified, smoke-tested index and read it back."""
    with open_run(s, cfg, dry_run=dry_run) as ctx:
        permits = Guards(allow_rollback=allow_rollback, allow_narrowing=allow_narrowing)
        pipeline.promote_one(ctx, variant_of(cfg, variant), permits=permits, dry_run=dry_run)


@command(
    *BUILD,
    "platforms",
    "require_gpu",
    name="build-all",
    variant=SOME_VARIANTS,
    no_promote="stop after smoke: build candidates, leave the floating tags alone",
    allow_rollback=ALLOW_ROLLBACK,
    allow_narrowing=ALLOW_NARROWING,
)
def build_all(
    s: Settings,
    cfg: Config,
    variant: str = "",
    no_promote: bool = False,
    allow_rollback: bool = False,
    allow_narrowing: bool = False,
    dry_run: bool = False,
) -> None:
    """Every variant x platform: build, merge, verify, smoke, promote, report (fail-closed)."""
    with open_run(s, cfg, dry_run=dry_run) as ctx:
        pipeline.build_all(
            ctx,
            cfg.select(variant),
            dry_run=dry_run,
            promote=not no_promote,
            permits=Guards(allow_rollback=allow_rollback, allow_narrowing=allow_narrowing),
        )


@command(
    "config",
    "out",
    "debug",
    "audit_service",
    "audit_osv_url",
    variant=SOME_VARIANTS,
    snapshot="serve this advisory snapshot (pypa/advisory-database layout) on 127.0.0.1 for "
    "the run: air-gapped audits",
    image="also audit what this image really holds (its installed distributions)",
    platform="platforms of --image, comma-separated (default: every one in the config)",
    allowlist="policy file (default: audit-allowlist.toml beside images.toml)",
    today="evaluate expiry dates as of this day (YYYY-MM-DD; default: today)",
    allow_missing="cells (variant/os/arch, comma-separated) whose lock may be absent: a known "
    "gap, printed, never silently passed",
)
def audit(
    s: Settings,
    cfg: Config,
    variant: str = "",
    snapshot: str = "",
    image: str = "",
    platform: str = "",
    allowlist: str = "",
    today: str = "",
    allow_missing: str = "",
) -> None:
    """pip-audit every committed lock (and optionally an image), --strict, with the allowlist
    policy; writes JSON results and CycloneDX SBOMs to build/audit/ and one summary table."""
    audit_all(
        AuditRequest(
            variants=cfg.select(variant),
            platforms=cfg.platforms,
            service=s.text("audit_service") or None,
            osv_url=s.text("audit_osv_url") or None,
            snapshot=Path(snapshot) if snapshot else None,
            image=image or None,
            image_platforms=_split(platform) or cfg.platforms,
            allowlist=Path(allowlist) if allowlist else cfg.root / DEFAULT_ALLOWLIST,
            today=_day(today),
            workdir=Paths(s.out, s.cache).audit,
            allow_missing=_split(allow_missing),
        )
    )


@command("config", "base_mirror", "debug", name="bases-update")
def bases_update(s: Settings, cfg: Config, dry_run: bool = False) -> None:
    """Resolve each base tag's current digest (its registry, or the mirror) and pin it in the
    config: one reviewed line per base."""
    pins.update_base_pins(cfg, dry_run=dry_run)


def _split(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text) if text else date.today()
    except ValueError:
        raise ConfigError(f"--today {text!r} is not a date", "use YYYY-MM-DD") from None
