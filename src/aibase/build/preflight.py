"""Everything that can be known to fail before a build starts, checked once per run, all of
it: the locks, the engine and its platforms, the registry, the bases. A dry run shows the
same table (and fails the same way) without building anything."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from aibase import log
from aibase.build.locks import check_lock
from aibase.build.run_context import RunContext, registry_client
from aibase.config.model import VariantConfig
from aibase.errors import (
    AibaseError,
    BuildError,
    EngineError,
    LockError,
    RegistryError,
    RegistryUnreachable,
)
from aibase.host import engine, local_registry
from aibase.registry.refs import parse_ref

OFFLINE = (
    "offline, the fixture variant builds from stand-ins through the same code path: "
    "./ai bases-bootstrap --config tests/fixtures/images.toml, then "
    "AIBASE_BASE_MIRROR=localhost:5000/mirror ./ai build-all --config tests/fixtures/images.toml"
)


@dataclass(frozen=True)
class Check:
    name: str
    problem: str  # "" when it passed
    fix: str = ""
    error: type[AibaseError] = AibaseError
    variants: tuple[str, ...] = ()  # the variants it stops; () every one
    offline: bool = False  # the offline fixture path gets round it
    ready: tuple[str, ...] = ()  # on a failed one: the variants that passed every check

    @property
    def ok(self) -> bool:
        return not self.problem


def preflight(
    ctx: RunContext,
    variants: Sequence[VariantConfig],
    platforms: Sequence[str],
    *,
    push: bool,
    dry_run: bool = False,
) -> list[Check]:
    """Run every check, print them, and raise the first failure's error naming them all
    (a dry run returns them instead: it prints its commands first)."""
    checks = [_lock(v, p) for v in variants for p in platforms]
    problem = engine.engine_problem(engine.gather_engine_facts(), platforms)
    checks.append(Check("engine", problem or "", "bash scripts/setup-host-debian.sh", EngineError))
    if push:
        checks.append(_registry(ctx, dry_run))
    bases: dict[tuple[str, str], tuple[str, ...]] = {}
    for v in variants:
        for pair in (
            (ctx.config.base_for(v), v.base),
            (ctx.config.installer_for(v), v.installer_ref),
        ):
            bases[pair] = (*bases.get(pair, ()), v.name)
    checks += [replace(_base(ctx, *pair), variants=users) for pair, users in bases.items()]
    for c in checks:  # what failed and why: once, in the error below
        log.info(f"preflight [{'ok  ' if c.ok else 'FAIL'}] {c.name}")
    failed = [c for c in checks if not c.ok]
    stopped = {v for c in failed for v in (c.variants or [v.name for v in variants])}
    ready = tuple(v.name for v in variants if v.name not in stopped)
    failed = [replace(c, ready=ready) for c in failed]
    if failed and not dry_run:
        raise_failed(failed)
    return failed


def raise_failed(failed: Sequence[Check]) -> None:
    """One error for every failed check: each problem once, each fix once, the offline path
    once where it helps, and `--variant` advice only when some variant passed every check."""
    first = failed[0]
    problems = [f"{c.name}: {c.problem}" for c in failed]
    if len(problems) == 1:
        message = f"{problems[0]}; nothing was built"
    else:
        listed = "".join(f"\n  - {p}" for p in problems)
        message = f"{len(problems)} preflight checks failed; nothing was built:{listed}"
    fixes = list(dict.fromkeys(c.fix for c in failed if c.fix))
    if first.ready:
        fixes.append(f"meanwhile ./ai build-all --variant {','.join(first.ready)} builds the rest")
    if any(c.offline for c in failed):
        fixes.append(OFFLINE)
    raise first.error(message, "\n  fix: ".join(fixes))


def _lock(variant: VariantConfig, platform: str) -> Check:
    s = check_lock(variant, variant.platform(platform))
    name = f"lock {variant.name}/{platform}"
    if s.ok:
        return Check(name, "")
    why = f": {s.why}" if s.why else ""
    fix = "run `./ai lock` where every index the config names is reachable, and commit it"
    missing = s.state == "missing"
    fix += " (lock.yml does it on GitHub)" if missing else ""
    return Check(name, f"{s.state} ({s.path}{why})", fix, LockError, (variant.name,), missing)


def _registry(ctx: RunContext, dry_run: bool) -> Check:
    host = ctx.config.registry
    managed = host == ctx.config.file_registry
    if dry_run:
        answering = ctx.registry.answers()
        if answering or managed:
            return Check(f"registry {host}", "")  # a managed one would be started
        return Check(
            f"registry {host}",
            "does not answer /v2/",
            "start it, or check --registry",
            RegistryUnreachable,
        )
    try:
        local_registry.ensure_registry(ctx.registry, ctx.paths if managed else None)
    except RegistryError as exc:  # named once, and "nothing was built" is raise_failed's
        problem = exc.message.removeprefix(f"registry {host} ")
        problem = problem.removesuffix("; nothing was built or pushed")
        return Check(f"registry {host}", problem, exc.fix, type(exc))
    return Check(f"registry {host}", "")


def _base(ctx: RunContext, mirrored: str, original: str) -> Check:
    """A base (or the installer image) can be resolved where the build will pull it: the
    mirror, or its registry."""
    ref = parse_ref(mirrored)
    name = f"base {mirrored}"
    try:
        if ref.api_host == ctx.config.registry:
            found = ctx.registry.head_manifest(ref.repository, ref.reference)
        else:
            with registry_client(ctx.settings, ref.api_host) as client:
                found = client.head_manifest(ref.repository, ref.reference)
    except RegistryError as exc:
        fix = (
            f"check the name in images.toml; without access to {ref.api_host}, pull bases "
            "from a mirror (AIBASE_BASE_MIRROR)"
        )
        if ctx.config.base_mirror:  # the mirror is what does not answer
            fix = f"start the mirror {ctx.config.base_mirror}, or check --base-mirror"
        return Check(name, f"cannot be resolved: {exc.message}", fix, BuildError, offline=True)
    if found is None:
        where = f"the mirror {ctx.config.base_mirror}" if ctx.config.base_mirror else ref.api_host
        fix = "check the base's name and tag in images.toml"
        if ctx.config.base_mirror:
            fix = (
                "copy the real base there, or for tests and offline hosts push stand-ins: "
                f"invoke bases-bootstrap --base-mirror {ctx.config.base_mirror}"
            )
        return Check(name, f"is not in {where} (for {original})", fix, BuildError)
    return Check(name, "")
