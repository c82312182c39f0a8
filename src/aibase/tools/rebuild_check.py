"""`./ai rebuild-check REF`: does the commit an index says it was built from make its Python
layers again, byte for byte? Reads the revision and variant from the index's labels, checks
the commit out in a temporary worktree, rebuilds the group stages (and the layers-check
report beside them) per platform on an isolated, empty builder, and compares each Python
layer's digest with the published one; a layer that differs is named with its first
differing file (`layer_diff`).

That builder is a private Docker Engine started for the check (`host.engine_private`): its
image store and cache are empty, so every stage really runs and nothing of the shared
engine's is used. It and the worktree are removed afterwards, on failure and interrupt too.
`--builder B` builds on B instead, the Python stages run again uncached (--no-cache-filter),
and says so.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from aibase import log
from aibase.build.cell import cell_lock_labels, platform_manifest, write_rendered
from aibase.build.layers import plan_groups, render_cell
from aibase.build.lock_format import parse_lock
from aibase.build.plan import BuildContext, Cell, plan_build
from aibase.config.loader import load_config
from aibase.config.model import Config
from aibase.config.resolved import Settings
from aibase.errors import ConfigError, NotReproduced
from aibase.host import engine_build, engine_private, git
from aibase.registry.client import RegistryClient
from aibase.registry.oci import entry_platform, is_attestation
from aibase.registry.refs import ImageRef, parse_ref
from aibase.release.verify import fetch_index
from aibase.tools.layer_diff import first_difference, tar_entries
from aibase.tools.rebuild_plan import (
    REVISION_LABEL,
    VARIANT_LABEL,
    LayerResult,
    Published,
    PublishedImage,
    RebuildPlan,
    compression_of,
    image_layers,
    pair_layers,
    plan_rebuild,
    python_layers,
)

LAYER_LIMIT = 1 << 34  # a layer blob read whole (the largest CUDA one is ~3 GB)


def read_published(client: RegistryClient, ref: ImageRef) -> Published:
    """The index's revision and variant labels and each platform image's layers."""
    fetched = fetch_index(client, ref)
    if not fetched.index.is_index:
        raise ConfigError(f"{ref} is not an index", "pass a merged index (REPO:TAG or REPO@...)")
    images: list[PublishedImage] = []
    labels: Mapping[str, str] = {}
    for entry in fetched.index.json.get("manifests", []):
        manifest = fetched.manifests.get(entry["digest"])
        if is_attestation(entry) or manifest is None:
            continue
        config = fetched.configs.get(entry["digest"]) or {}
        labels = (config.get("config") or {}).get("Labels") or {}
        images.append(
            PublishedImage(
                entry_platform(entry), manifest.digest, image_layers(manifest.json, config)
            )
        )
    revision, variant = labels.get(REVISION_LABEL, ""), labels.get(VARIANT_LABEL, "")
    if not revision or not variant:
        raise ConfigError(
            f"{ref} carries no {REVISION_LABEL if not revision else VARIANT_LABEL} label",
            "rebuild-check reads the commit and variant from an index this tool built",
        )
    return Published(ref, revision, variant, tuple(images))


# what renders and plans a cell's build: the rebuild uses this checkout's (HEAD's)
BUILD_CODE = ("src/aibase/build", "docker")


def check_rebuild(
    settings: Settings, config: Config, ref_text: str, platform: str, *, dry_run: bool
) -> list[LayerResult]:
    """The whole check; raises NotReproduced when a Python layer differs."""
    if not ref_text:
        raise ConfigError("rebuild-check needs the index", "./ai rebuild-check REPO:TAG")
    started = time.monotonic()
    ref = parse_ref(ref_text)
    top = git.toplevel(config.root)
    engine = None if settings.builder else engine_private.plan_engine()
    # first: where it runs (a missing dockerd fails here, before anything is read)
    log.info(f"builder: {_builder_said(engine, settings.builder)}")
    with ExitStack() as stack:
        client = stack.enter_context(_client(settings, ref.api_host))
        published = read_published(client, ref)
        if not git.has_commit(top, published.revision):
            raise ConfigError(
                f"{ref} was built from {published.revision}, which this clone does not hold",
                f"git fetch origin {published.revision} (or the branch holding it), then rerun",
            )
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aibase-rebuild-")))
        plan = plan_rebuild(published, platform, work=work, builder=settings.builder)
        log.info(
            f"rebuild-check {ref}: revision {published.revision[:12]}, variant "
            f"{published.variant}, platforms {', '.join(plan.platforms)}"
        )
        if dry_run:
            log.echo_command(plan.worktree_argv(top), dry_run=True)
            if engine:
                log.echo_command(engine_private.bridge_argv(engine, "add"), dry_run=True)
                log.echo_command(engine_private.dockerd_argv(engine), dry_run=True)
            log.info(
                f"[dry-run] would rebuild the group stages of {published.variant} at "
                f"{published.revision[:12]} per platform, compare each Python layer with "
                f"{ref}, then remove the worktree"
                + (
                    f", stop the engine, delete its bridge and remove {engine.root}"
                    if engine
                    else ""
                )
            )
            return []
        if git.differs(top, published.revision, BUILD_CODE):
            log.warn(
                f"this checkout's build code ({', '.join(BUILD_CODE)}) differs from "
                f"{published.revision[:12]}'s: the rebuild renders with this checkout's, so a "
                "difference may come from that; run rebuild-check from a checkout of the "
                "revision to rule it out"
            )
        worktree = stack.enter_context(git.worktree(top, published.revision, plan.worktree))
        if engine:
            stack.enter_context(engine_private.private_engine(engine))
        rebuilt_config = load_config(
            worktree / _in_checkout(config.path, top),
            {
                "registry": ref.registry,
                "repository": ref.repository,
                "base_mirror": settings.base_mirror or "",
            },
            env={},
        )
        results = []
        for image in (i for i in published.images if i.platform in plan.platforms):
            results += _check_platform(
                settings, rebuilt_config, published, image, plan, engine, work, client
            )
    for r in results:
        print(r.line())
    return _summarize(results, time.monotonic() - started)


def _in_checkout(path: Path, top: Path) -> Path:
    """The config's path inside the checkout: the worktree holds the revision's copy."""
    try:
        return path.resolve().relative_to(top)
    except ValueError:
        raise ConfigError(
            f"{path} is outside the checkout {top}: the revision's copy cannot be found",
            "pass a --config inside the repository",
        ) from None


def _builder_said(engine: engine_private.PrivateEngine | None, given: str | None) -> str:
    if engine:
        return (
            f"a private, empty Docker Engine (dockerd {engine_private.dockerd_version()}, "
            f"data root {engine.data_root}), removed afterwards"
        )
    return f"{given} (--builder), the Python stages run again uncached"


def _client(settings: Settings, host: str) -> RegistryClient:
    return RegistryClient(host, ca=settings.registry_ca, auth_hosts=settings.auth_hosts)


def _check_platform(
    settings: Settings,
    config: Config,
    published: Published,
    image: PublishedImage,
    rebuild: RebuildPlan,
    engine: engine_private.PrivateEngine | None,
    work: Path,
    client: RegistryClient,
) -> list[LayerResult]:
    """Rebuild one platform's Python stages; each Python layer against the published one."""
    variant = config.variant(published.variant)
    lock = variant.lock_file(image.platform).read_text()
    groups = [g.name for g in plan_groups(tuple(parse_lock(lock)), variant)]
    cell = Cell(variant.name, image.platform)
    rendered = work / "rendered" / cell.slug
    write_rendered(
        rendered, render_cell(variant.dockerfile.read_text(), lock, variant, image.platform)
    )
    now = datetime.now(UTC)
    ctx = BuildContext(
        revision=published.revision,
        created=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        date=now.strftime("%Y%m%d"),
        run_id=f"rchk{secrets.token_hex(2)}",
        ca_bundle=settings.ca_bundle,
        pip_index_url_file=settings.pip_index_url_file,
        compression=compression_of(image.layers),
        builder=rebuild.builder,
        network=rebuild.network,
    )
    # the private engine's builder is its default one: the docker driver
    driver = engine_build.builder_driver(rebuild.builder) if rebuild.builder else "docker"
    plan = plan_build(
        config,
        variant,
        cell,
        ctx,
        push=True,
        by_digest=driver in engine_build.DIGEST_DRIVERS,  # no tag left behind where it can
        metadata_file=work / f"{cell.slug}.json",
        rendered=rendered,
        extra_labels=cell_lock_labels(config, variant, image.platform),
        uncached=rebuild.uncached(groups),
    )
    with log.step(f"rebuild {cell.variant}/{cell.platform}"):
        metadata = engine_build.run_build(
            plan.argv,
            plan.metadata_file,
            f"{cell.variant}/{cell.platform}",
            registry=config.registry,
            extra_env=engine.env if engine else None,
        )
    digest = str(metadata.get("containerimage.digest", ""))
    manifest = platform_manifest(client, config.repository, digest, image.platform)
    rebuilt_config = json.loads(
        client.get_blob(config.repository, manifest.json["config"]["digest"])
    )
    rebuilt = image_layers(manifest.json, rebuilt_config)
    old = python_layers(image.layers, groups)
    new = python_layers(rebuilt, groups)
    if not old:  # one platform with nothing compared must not pass beside the others
        raise NotReproduced(
            f"{image.platform}: the published image holds no Python layer to compare",
            "pass an index that build-all pushed (group layers, `COPY /layer/`)",
        )
    results = pair_layers(image.platform, old, new)
    return [_explain(client, published.ref.repository, config.repository, r) for r in results]


def _explain(
    client: RegistryClient, repo: str, rebuilt_repo: str, result: LayerResult
) -> LayerResult:
    """A differing layer's first differing file, from both blobs' tar entries."""
    if result.reproduced:
        return result
    if not result.published or not result.rebuilt:
        side = "the published index" if not result.published else "the rebuild"
        return LayerResult(
            result.platform,
            result.name,
            result.published,
            result.rebuilt,
            f"only in {side} ({result.published or result.rebuilt})",
        )
    old = tar_entries(client.get_blob(repo, result.published, limit=LAYER_LIMIT))
    new = tar_entries(client.get_blob(rebuilt_repo, result.rebuilt, limit=LAYER_LIMIT))
    diff = first_difference(old, new) or "the same files; only the compressed blob differs"
    return LayerResult(
        result.platform,
        result.name,
        result.published,
        result.rebuilt,
        f"{diff} ({result.published[:19]} -> {result.rebuilt[:19]})",
    )


def _summarize(results: Sequence[LayerResult], seconds: float) -> list[LayerResult]:
    same = sum(r.reproduced for r in results)
    log.info(f"rebuild-check: {same} of {len(results)} Python layers reproduced ({seconds:.0f} s)")
    differ = [r for r in results if not r.reproduced]
    if differ:
        raise NotReproduced(
            f"{len(differ)} Python layer(s) differ from the published ones, first "
            f"{differ[0].platform} {differ[0].name}: {differ[0].difference}",
            "the build is not reproducible: see which file differs above (a timestamp, a "
            "path, a build's own state left in the layer)",
        )
    if not results:
        raise NotReproduced("no Python layers found to compare", "pass an index this tool built")
    return list(results)
