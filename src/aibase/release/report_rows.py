"""The report's rows for one verified index: per platform its digest, size, lock, smoke
result and named layers. Reads the lock (for its layer groups) and the base image's layers
from the registry; a base that cannot be read leaves its layers named by their steps."""

from __future__ import annotations

from collections.abc import Mapping

from aibase import log
from aibase.build import layers, lock_format
from aibase.build.cell import platform_manifest
from aibase.build.plan import ACCEPTED_LABEL, LOCK_LABEL
from aibase.build.run_context import RunContext, registry_client
from aibase.config.model import VariantConfig
from aibase.errors import AibaseError
from aibase.host.standins import STANDIN_LABEL
from aibase.registry.refs import parse_ref
from aibase.release.layer_names import base_layer_count, name_layers
from aibase.release.report import PlatformRow
from aibase.release.verify import PlatformImage, VerifyResult
from aibase.state import CellRecord, SmokeRecord


def platform_rows(
    ctx: RunContext,
    variant: VariantConfig,
    result: VerifyResult,
    smoked: Mapping[str, SmokeRecord],
    cells: Mapping[str, CellRecord],
) -> list[PlatformRow]:
    rows = []
    for image in result.images:
        lock = variant.lock_file(image.platform)
        cell, smoke = cells.get(image.platform), smoked.get(image.platform)
        stand_in = image.labels.get(STANDIN_LABEL) == "true"
        names: tuple[str, ...] = ()
        if image.steps:
            base = _base_layers(ctx, variant, image)
            names = name_layers(image.steps, base, _groups(variant, image.platform), stand_in)
        rows.append(
            PlatformRow(
                variant=variant.name,
                platform=image.platform,
                digest=image.digest,
                compressed_mb=round(image.compressed_bytes / 1e6, 1),
                build_seconds=cell.seconds if cell else None,
                smoke=smoke.problems if smoke else None,
                skipped=smoke.skipped if smoke else (),
                lock=str(lock),
                lock_sha256=image.labels.get(LOCK_LABEL),
                layers_mb=tuple(round(size / 1e6, 1) for size in image.layers),
                accepted=image.labels.get(ACCEPTED_LABEL),
                layer_names=names,
                stand_in_of=(image.labels.get(f"{STANDIN_LABEL}.of") or "?") if stand_in else None,
                sbom=image.sbom or None,
                provenance=image.provenance or None,
            )
        )
    return rows


def _groups(variant: VariantConfig, platform: str) -> tuple[str, ...]:
    """The cell's layer groups in the order the Dockerfile copies them; () without a lock."""
    lock = variant.lock_file(platform)
    if not lock.exists():
        return ()
    try:
        planned = layers.plan_groups(tuple(lock_format.parse_lock(lock.read_text())), variant)
    except AibaseError:
        return ()
    return tuple(g.name for g in planned)


def _base_layers(ctx: RunContext, variant: VariantConfig, image: PlatformImage) -> int:
    """How many of the image's layers are its base's, read from the base the build used."""
    base = parse_ref(ctx.config.base_for(variant))
    try:
        if base.api_host == ctx.config.registry:
            found = platform_manifest(ctx.registry, base.repository, base.reference, image.platform)
        else:
            with registry_client(ctx.settings, base.api_host) as client:
                found = platform_manifest(client, base.repository, base.reference, image.platform)
    except AibaseError as exc:
        log.debug(f"report: the base {base} could not be read ({exc.message}); layers by step")
        return 0
    digests = [str(layer.get("digest", "")) for layer in found.json.get("layers", [])]
    return base_layer_count(image.layer_digests, digests)
