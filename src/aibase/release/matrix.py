"""The CI job matrix, from images.toml alone (the workflows hold no list of their own). It says
which cell builds on which runner, which platform is smoke-tested where, which variant's
promotion waits for a GPU runner, and which variant waits for its lock (lock.yml makes the
locks no host of ours can resolve: such a variant's legs are left out, never built without
its lock, and the plan says so)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aibase import github, log
from aibase.build.locks import check_lock
from aibase.config.model import Config, VariantConfig
from aibase.errors import ConfigError, LockError
from aibase.registry.trust import is_loopback

LOCK_FIX = (
    "run the lock workflow (Actions > lock > Run workflow) where every index the config "
    "names is reachable, review and merge its pull request; or `invoke lock` there and commit"
)


@dataclass(frozen=True)
class Waiting:
    """A variant whose lock is not there yet: its legs are left out of this run."""

    variant: str
    missing: tuple[str, ...]  # cells, e.g. "cpu/linux/amd64"


def split_ready(
    config: Config, variants: Sequence[VariantConfig]
) -> tuple[list[VariantConfig], list[Waiting]]:
    """Variants whose every lock is in place, and those waiting for one. A stale or refused
    lock is not waiting: it is an error in the change under review."""
    ready, waiting = [], []
    for v in variants:
        found = [check_lock(v, v.platform(p)) for p in config.required_platforms]
        broken = [s for s in found if s.state not in ("ok", "missing")]
        if broken:
            s = broken[0]
            why = f": {s.why}" if s.why else ""
            raise LockError(
                f"lock {s.variant}/{s.platform}: {s.state} ({s.path}{why})",
                "run `invoke lock` and commit the result (`invoke lock --check` lists every cell)",
            )
        missing = tuple(f"{s.variant}/{s.platform}" for s in found if s.state == "missing")
        if missing:
            waiting.append(Waiting(v.name, missing))
        else:
            ready.append(v)
    return ready, waiting


def parse_runners(text: str) -> dict[str, str]:
    runners = {}
    for item in (x.strip() for x in text.split(",") if x.strip()):
        platform, sep, label = item.partition("=")
        if not sep or not label.strip():
            raise ConfigError(
                f"runners: {item!r} is not platform=label",
                "e.g. AIBASE_RUNNERS=linux/amd64=ubuntu-24.04,linux/arm64=ubuntu-24.04-arm",
            )
        runners[platform.strip()] = label.strip()
    return runners


def native_platform(label: str) -> str:
    """The platform a runner label runs natively (GitHub's naming: `-arm` is arm64)."""
    return "linux/arm64" if "arm" in label.lower() else "linux/amd64"


def plan_matrix(
    config: Config,
    runners: Mapping[str, str],
    gpu_runner: str,
    *,
    ci: bool = False,
    variants: Sequence[VariantConfig] | None = None,
) -> dict[str, Any]:
    """{"cells": [...], "gpu": [...], "variants": [...]} for fromJSON()."""
    if ci and is_loopback(config.registry):
        raise ConfigError(
            f"the registry is {config.registry}: CI jobs run on separate machines, each with "
            "its own loopback, so their cells could never meet in one index",
            "set the repository variable AIBASE_REGISTRY (and the secrets REGISTRY_USER, "
            "REGISTRY_PASSWORD)",
        )
    missing = [p for p in config.required_platforms if p not in runners]
    if missing:
        raise ConfigError(
            f"no CI runner label for {', '.join(missing)}",
            "add it to AIBASE_RUNNERS (a repository variable): platform=label,...",
        )
    chosen = list(config.variants.values()) if variants is None else list(variants)
    jobs: list[dict[str, Any]] = []
    for v in chosen:
        for p in config.required_platforms:
            slug, label = f"{v.name}-{p.replace('/', '-')}", runners[p]
            emulated = native_platform(label) != p
            jobs.append(
                {
                    "variant": v.name,
                    "platform": p,
                    "slug": slug,
                    "runner": label,
                    "emulated": emulated,
                }
            )
    cuda = [j for j in jobs if config.variants[j["variant"]].platform(j["platform"]).cuda]
    if cuda and not gpu_runner and ci:
        raise ConfigError(
            f"{', '.join(sorted({j['variant'] for j in cuda}))} promises CUDA: its promotion "
            "waits for a smoke test on a GPU, and no GPU runner is named",
            "set the repository variable AIBASE_GPU_RUNNER to a self-hosted GPU runner label, "
            "or to 'none' to promote without a GPU test (the report says so)",
        )
    gpu = [] if gpu_runner == "none" else [j | {"runner": gpu_runner} for j in cuda]
    needs_gpu = {j["variant"] for j in gpu}
    return {
        "cells": jobs,
        "gpu": gpu,
        "variants": [{"name": v.name, "require_gpu": v.name in needs_gpu} for v in chosen],
    }


def plan_ready(
    config: Config,
    runners: Mapping[str, str],
    gpu_runner: str,
    *,
    ci: bool,
    variant: str = "",
) -> tuple[dict[str, Any], list[Waiting]]:
    """The matrix of the variants that can be built now, and those waiting for a lock. A
    variant asked for by name (`--variant`) must be ready: there is nothing else to build."""
    ready, waiting = split_ready(config, config.select(variant))
    if variant and waiting:
        cells = ", ".join(c for w in waiting for c in w.missing)
        raise LockError(f"{variant} waits for its lock ({cells}): nothing to build", LOCK_FIX)
    matrix = plan_matrix(config, runners, gpu_runner, ci=ci, variants=ready)
    matrix["waiting"] = [{"name": w.variant, "missing": list(w.missing)} for w in waiting]
    return matrix, waiting


def render_plan(matrix: Mapping[str, Any], waiting: Sequence[Waiting]) -> str:
    """The plan job's summary: every leg with its runner, and what waits and why."""
    lines = [
        "### Build plan",
        "",
        "| variant | platform | runner | emulated |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {c['variant']} | {c['platform']} | {c['runner']} | {'yes' if c['emulated'] else 'no'} |"
        for c in matrix["cells"]
    ]
    if not matrix["cells"]:
        lines.append("| - | - | - | nothing to build in this run |")
    lines += [
        f"\nGPU smoke: {g['variant']} {g['platform']} on `{g['runner']}`" for g in matrix["gpu"]
    ]
    for w in waiting:
        lines.append(
            f"\n**{w.variant}: waiting for lock.yml** (missing lock {', '.join(w.missing)}): "
            "its legs are skipped in this run and its tag stays where it is. "
            f"To build it: {LOCK_FIX}."
        )
    return "\n".join(lines)


def render_text(matrix: Mapping[str, Any]) -> str:
    """The plan for a terminal: one line per leg, per GPU smoke and per promotion."""

    def job(j: Mapping[str, Any]) -> str:
        runner = j["runner"] or "- (no runner named)"
        return f"  {j['variant']:<10} {j['platform']:<12} runner {runner}" + (
            "  (emulated: QEMU)" if j["emulated"] else ""
        )

    lines = ["build legs:", *map(job, matrix["cells"])]
    if not matrix["cells"]:
        lines.append("  none: nothing to build in this run")
    if matrix["gpu"]:
        lines += ["GPU smoke:", *map(job, matrix["gpu"])]
    for v in matrix["variants"]:
        after = "after its GPU smoke" if v["require_gpu"] else "after smoke on each platform"
        lines.append(f"promote {v['name']}: {after}")
    for w in matrix.get("waiting", []):
        lines.append(f"waiting for a lock: {w['name']} ({', '.join(w['missing'])})")
    return "\n".join(lines)


def unassigned(matrix: Mapping[str, Any]) -> list[str]:
    """One warning per job no runner would pick up: a GPU smoke without a GPU runner (outside
    --ci the plan is still shown)."""
    return [
        f"{j['variant']}/{j['platform']}: the GPU smoke has no runner (`--ci` refuses this "
        "plan): name a self-hosted GPU runner label (--gpu-runner, AIBASE_GPU_RUNNER), or "
        "'none' to promote without a GPU test"
        for j in [*matrix["cells"], *matrix["gpu"]]
        if not j["runner"]
    ]


def emit(matrix: Mapping[str, Any], as_json: bool, waiting: Sequence[Waiting] = ()) -> None:
    """Print it; on GitHub Actions also set the step outputs `matrix` (for fromJSON) and
    `build` (whether any leg is left), and write the plan into the job summary."""
    text = json.dumps(matrix, separators=(",", ":"))
    print(text if as_json else render_text(matrix))
    for message in unassigned(matrix):
        log.warn(message)
    for w in waiting:
        message = f"{w.variant} waits for its lock ({', '.join(w.missing)}): its legs are skipped"
        log.warn(message)
        github.annotate("warning", "waiting for lock.yml", message)
    github.set_output("matrix", text)
    github.set_output("build", "true" if matrix["cells"] else "false")
    github.add_summary(render_plan(matrix, waiting))
