"""Pure planning: cells, build args, labels, tags and the exact commands. No I/O."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aibase.audit.allowlist import AllowEntry
from aibase.build.lock_format import parse_lock
from aibase.config.model import Config, VariantConfig
from aibase.errors import ConfigError
from aibase.host.buildx import BuildxBuild, buildx_argv
from aibase.registry.refs import is_valid_tag

LABEL_NS = "io.cerebral.ai-base"


@dataclass(frozen=True)
class Cell:
    """One variant built for one platform: the unit a CI matrix job runs."""

    variant: str
    platform: str

    @property
    def slug(self) -> str:
        return f"{self.variant}-{self.platform.replace('/', '-')}"


REFRESH_STAGE = "os"  # the Dockerfiles' stage of the OS packages and the venv


@dataclass(frozen=True)
class BuildContext:
    """Per-run facts the plan needs but must not look up itself."""

    revision: str  # full git commit
    created: str  # RFC 3339
    date: str  # YYYYMMDD, for the immutable tag
    run_id: str  # a few random hex digits: two runs of one commit on one day differ
    ca_bundle: Path | None = None  # BuildKit secret for TLS-intercepting networks
    pip_index_url_file: Path | None = None  # BuildKit secret: a private index URL + token
    build_cache: str | None = None  # "registry", or a directory for a local cache; None: off
    compression: str = "gzip"  # every puller reads it; zstd measured faster (docs/updates.md)
    no_cache: bool = False  # rebuild every step (e.g. to prove what a step leaves behind)
    refresh_os: bool = False  # rebuild the OS stage (the weekly refresh); groups stay cached
    builder: str | None = None  # a buildx builder other than the current one
    network: str | None = None  # RUN steps' network: "host" on an engine without a bridge


@dataclass(frozen=True)
class BuildPlan:
    cell: Cell
    argv: tuple[str, ...]
    metadata_file: Path


def plan_cells(config: Config, variants: Sequence[VariantConfig]) -> tuple[Cell, ...]:
    """Every variant x platform of this run, in a stable order (variant, then platform)."""
    return tuple(Cell(v.name, p) for v in variants for p in config.platforms)


def floating_tag(variant: VariantConfig) -> str:
    return variant.name


def promoted_tags(variant: VariantConfig) -> tuple[str, str]:
    """The tags that move, together and only in promote: `cuda`, `cuda-py3.11-torch2.4.1-cu121`."""
    return check_tag(floating_tag(variant)), check_tag(descriptive_tag(variant))


def descriptive_tag(variant: VariantConfig) -> str:
    """`cpu-py3.11-torch2.4.1`, `cuda-py3.11-torch2.4.1-cu121`."""
    parts = [variant.name, f"py{variant.python}"]
    if variant.torch:
        parts.append(f"torch{variant.torch.torch}")
    cudas = sorted({p.cuda for p in variant.platforms.values() if p.cuda})
    parts += [f"cu{c.replace('.', '')}" for c in cudas]
    return "-".join(parts)


def immutable_tag(variant: VariantConfig, ctx: BuildContext) -> str:
    """The tag a merged index is written under, once per run, never moved or promoted:
    `cpu-20261127-abc1234-9f3e2a`."""
    return check_tag(f"{variant.name}-{ctx.date}-{ctx.revision[:7]}-{ctx.run_id}")


def check_tag(tag: str) -> str:
    """A tag as the OCI distribution spec allows it, checked before it reaches buildx."""
    if not is_valid_tag(tag):
        raise ConfigError(
            f"{tag!r} is not a valid image tag ([A-Za-z0-9_][A-Za-z0-9._-], at most 128)",
            "shorten the variant name in images.toml",
        )
    return tag


def labels(config: Config, variant: VariantConfig, ctx: BuildContext) -> dict[str, str]:
    return {
        "org.opencontainers.image.source": config.source,
        "org.opencontainers.image.revision": ctx.revision,
        "org.opencontainers.image.created": ctx.created,
        "org.opencontainers.image.version": descriptive_tag(variant),
        "org.opencontainers.image.title": f"{config.title}:{variant.name}",
        "org.opencontainers.image.description": variant.description,
        "org.opencontainers.image.base.name": config.base_for(variant),
        f"{LABEL_NS}.variant": variant.name,
        f"{LABEL_NS}.python": variant.python,
        f"{LABEL_NS}.torch": variant.torch.torch if variant.torch else "none",
        f"{LABEL_NS}.cuda": ",".join(
            f"{p.platform}={p.cuda}" for p in variant.platforms.values() if p.cuda
        )
        or "none",
    }


REQUIRED_LABELS = (
    "org.opencontainers.image.source",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.created",
    "org.opencontainers.image.version",
    f"{LABEL_NS}.variant",
    f"{LABEL_NS}.python",
    f"{LABEL_NS}.torch",
    f"{LABEL_NS}.cuda",
)


LOCK_LABEL = f"{LABEL_NS}.lock.sha256"  # links the image to its lock, and so to its SBOM
# the vulnerabilities the image carries on purpose: ids of audit-allowlist.toml entries
ACCEPTED_LABEL = f"{LABEL_NS}.accepted-vulnerabilities"


def lock_labels(lock: bytes, allowlist: Sequence[AllowEntry]) -> dict[str, str]:
    """What a cell's lock says about its image: the lock's digest, and the allowlist entries
    for packages the lock pins (comma-separated ids; none: no such label). The audit decides
    whether an entry still holds; the label says the image was built carrying it."""
    pinned = parse_lock(lock.decode())
    accepted = sorted({e.id for e in allowlist if e.package in pinned})
    out = {LOCK_LABEL: hashlib.sha256(lock).hexdigest()}
    return out | ({ACCEPTED_LABEL: ",".join(accepted)} if accepted else {})


def build_args(config: Config, variant: VariantConfig) -> dict[str, str]:
    return {
        "BASE_IMAGE": config.base_for(variant),
        "INSTALLER_IMAGE": config.installer_for(variant),
        "PYTHON_VERSION": variant.python,
    }


CELL_TAG_PREFIX = "build-"  # a cell's single-platform image: merge's input, never promoted


def cell_tag(cell: Cell, ctx: BuildContext) -> str:
    """The immutable tag a cell is pushed under (`build-fixture-linux-amd64-20261127-abc1234`).

    Push-by-digest would need a docker-container builder (its image comes from Docker Hub);
    a unique, never-promoted tag works on the default docker driver too.
    """
    return check_tag(f"{CELL_TAG_PREFIX}{cell.slug}-{ctx.date}-{ctx.revision[:7]}-{ctx.run_id}")


def plan_build(
    config: Config,
    variant: VariantConfig,
    cell: Cell,
    ctx: BuildContext,
    *,
    push: bool,
    load: bool = False,
    by_digest: bool = False,
    metadata_file: Path,
    rendered: Path | None = None,
    tags: Sequence[str] = (),
    extra_labels: Mapping[str, str] | None = None,
    uncached: Sequence[str] = (),
) -> BuildPlan:
    """The exact `docker buildx build` for one cell.

    push: push under the cell's immutable tag: nothing a user pulls changes until promote.
    load: a single-platform local image for development.
    rendered: the folder `layers.write_rendered` filled (Dockerfile, groups/).
    uncached: stages run again whatever the cache holds (rebuild-check's Python stages).
    """
    contexts: dict[str, Path | str] = {"locks": variant.lock_dir}
    if rendered:
        contexts["groups"] = rendered / "groups"
    secrets = {"ca_bundle": ctx.ca_bundle, "pip_index_url": ctx.pip_index_url_file}
    cache_from, cache_to = layer_cache(config, cell, ctx.build_cache, ctx.compression)
    build = BuildxBuild(
        # install-group.sh and .dockerignore come from the variant's folder
        context=variant.dockerfile.parent,
        platforms=(cell.platform,),
        file=rendered / "Dockerfile" if rendered else variant.dockerfile,
        builder=ctx.builder,
        build_contexts=contexts,
        metadata_file=metadata_file,
        network=ctx.network,
        # SLSA provenance with the build's parameters (no secret values): verify checks it
        provenance="mode=max" if push else None,
        build_args=build_args(config, variant),
        labels=labels(config, variant, ctx) | dict(extra_labels or {}),
        secrets={key: path for key, path in secrets.items() if path is not None},
        no_cache=ctx.no_cache,
        # apt runs again; the groups' layers, joined with --link, stay
        no_cache_filter=(*uncached, *((REFRESH_STAGE,) if ctx.refresh_os else ()))
        if not ctx.no_cache
        else (),
        cache_from=cache_from,
        cache_to=cache_to,
        output=push_output(config, cell, ctx, by_digest=by_digest) if push else (),
        load=load and not push,
        tags=tags if load and not push else (),
    )
    return BuildPlan(cell, buildx_argv(build), metadata_file)


def push_output(config: Config, cell: Cell, ctx: BuildContext, *, by_digest: bool) -> list[str]:
    """The image exporter's attributes for a pushed cell."""
    if by_digest:  # no tag at all: the record carries the digest
        name = [f"name={config.image}", "push-by-digest=true", "name-canonical=true"]
    else:  # the docker driver needs a name: a unique tag nobody pulls
        name = [f"name={config.image}:{cell_tag(cell, ctx)}"]
    return ["type=image", *name, "push=true", forced_compression(ctx.compression)]


def forced_compression(compression: str) -> str:
    """Exporter attributes for the image and the layer cache alike. Forced for gzip too:
    unforced, the image exporter reuses whatever blobs the cache holds (a builder that once
    built zstd pushes zstd layers under "gzip"), and the cache exporter walks every mix of
    the gzip and zstd blobs it holds (2^layers, moby/buildkit#6088) until dockerd runs out
    of memory."""
    return f"compression={compression},force-compression=true"


def layer_cache(
    config: Config, cell: Cell, build_cache: str | None, compression: str
) -> tuple[str | None, str | None]:
    """BuildKit's layer cache for one cell, in the registry beside the images or in a
    folder: where it comes from and where it goes (None, None: no cache)."""
    if not build_cache:
        return None, None
    forced = f"mode=max,{forced_compression(compression)}"
    if build_cache == "registry":
        ref = f"{config.image}:cache-{cell.slug}"
        return f"type=registry,ref={ref}", f"type=registry,ref={ref},{forced}"
    folder = Path(build_cache) / cell.slug
    return f"type=local,src={folder}", f"type=local,dest={folder},{forced}"
