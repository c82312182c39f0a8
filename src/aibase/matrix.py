"""The CI job matrix, from images.toml alone (the workflows hold no list of their own):
which cell builds on which runner, which platform is smoke-tested where, which variant's
promotion waits for a GPU runner."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aibase import github
from aibase.config import Config, VariantConfig
from aibase.errors import ConfigError
from aibase.trust import is_loopback


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
            jobs.append({"variant": v.name, "platform": p, "slug": slug, "runner": label,
                         "emulated": emulated})  # fmt: skip
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


def emit(matrix: Mapping[str, Any], as_json: bool) -> None:
    """Print it; on GitHub Actions also set the step output `matrix` (for fromJSON)."""
    text = json.dumps(matrix, separators=(",", ":"))
    print(text if as_json else "\n".join(f"{k}: {v}" for k, v in matrix.items()))
    github.set_output("matrix", text)
