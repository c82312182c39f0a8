"""The `docker buildx build` command line, written in one place. Pure: it runs nothing
(`host.engine_build` runs what it returns).

A cell's build (`build.plan`), a stand-in base (`host.standins`) and the bench's
single-layer shape (`tools.bench_plan`) differ only in the options they pass here, so a
flag is spelled, ordered and quoted the same way in all three.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# BuildKit's SLSA provenance: with the build's parameters (max: what verify checks, no secret
# values) or without them (min); False: none (a stand-in base carries no attestation).
ProvenanceMode = Literal["mode=max", "mode=min", False]


@dataclass(frozen=True)
class BuildxBuild:
    """One `docker buildx build`; each field is one option, left out when empty.

    output: the exporter's attributes (`type=image`, `name=...`, `push=true`), joined with
    commas into one `--output`. secrets: BuildKit secret id -> the file it comes from (never
    a build arg: a build arg ends up in the image's history).
    """

    context: Path | str
    platforms: Sequence[str]
    file: Path | None = None
    builder: str | None = None
    build_contexts: Mapping[str, Path | str] = field(default_factory=dict)
    metadata_file: Path | None = None
    network: str | None = None  # RUN steps' network ("host": an engine without a bridge)
    progress: str | None = "plain"
    provenance: ProvenanceMode | None = None  # None: buildx's default
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, Path] = field(default_factory=dict)
    no_cache: bool = False
    no_cache_filter: Sequence[str] = ()  # stages rebuilt while the others stay cached
    cache_from: str | None = None
    cache_to: str | None = None
    output: Sequence[str] = ()
    load: bool = False
    tags: Sequence[str] = ()


def buildx_argv(build: BuildxBuild) -> tuple[str, ...]:
    """The argument list, in one fixed order (the build context last)."""
    argv = ["docker", "buildx", "build"]
    argv += _option("--builder", build.builder)
    argv += _option("--platform", ",".join(build.platforms))
    argv += _option("--file", build.file)
    for name, source in build.build_contexts.items():
        argv += ["--build-context", f"{name}={source}"]
    argv += _option("--metadata-file", build.metadata_file)
    argv += _option("--network", build.network)
    argv += _option("--progress", build.progress)
    if build.provenance is not None:
        argv.append(f"--provenance={build.provenance or 'false'}")
    argv += _repeated("--build-arg", build.build_args)
    argv += _repeated("--label", build.labels)
    argv += [a for key, src in build.secrets.items() for a in ("--secret", f"id={key},src={src}")]
    if build.no_cache:
        argv.append("--no-cache")
    argv += [a for stage in build.no_cache_filter for a in ("--no-cache-filter", stage)]
    argv += _option("--cache-from", build.cache_from)
    argv += _option("--cache-to", build.cache_to)
    argv += _option("--output", ",".join(build.output))
    if build.load:
        argv.append("--load")
    argv += [a for tag in build.tags for a in ("--tag", tag)]
    return (*argv, str(build.context))


def _option(flag: str, value: Path | str | None) -> list[str]:
    return [flag, str(value)] if value else []


def _repeated(flag: str, pairs: Mapping[str, str]) -> list[str]:
    return [a for key, value in pairs.items() for a in (flag, f"{key}={value}")]
