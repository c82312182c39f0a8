"""Images built beside the fixture the way a cell builds: BuildKit provenance in mode=max from
inside this checkout (so it names this revision and records the source label), and an SBOM
of what the pushed layers hold attached as a referrer. A test that needs verify to pass
everything but the one thing it breaks builds its image here."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from typing import Any

from aibase.audit.attached import read_contents
from aibase.audit.sbom import SBOM_TYPE, BaseImage, ImageId, make_sbom, sbom_bytes
from aibase.build.sbom import image_of, provenance_of
from aibase.registry.client import RegistryClient
from aibase.registry.oci import image_entries
from aibase.registry.referrers import attach

from .conftest import REGISTRY, REPO

SOURCE = "https://github.com/cerebral/ai-base"  # the fixture config's project source


@dataclass(frozen=True)
class Pushed:
    top: str  # what buildx pushed: an index of the image and its provenance
    image: str  # the platform image's digest
    entries: list[dict[str, Any]]  # its index entries: the image, then its provenance
    base: BaseImage  # the image it was built FROM, as its provenance resolved it


def push_attested(
    dockerfile: str,
    repo: str,
    tag: str,
    *,
    platform: str = "linux/amd64",
    build_args: tuple[str, ...] = (),
    sbom: bool = True,
) -> Pushed:
    """Build and push repo:tag as a cell would; sbom=False: attach none (the test will)."""
    ctx = REPO / "build" / f"attested-{uuid.uuid4().hex[:8]}"  # in the checkout: its revision
    ctx.mkdir(parents=True)
    try:
        (ctx / "Dockerfile").write_text(dockerfile)
        meta = ctx / "metadata.json"
        args = [a for b in build_args for a in ("--build-arg", b)]
        subprocess.run(
            [
                *("docker", "buildx", "build", "--platform", platform, "--provenance", "mode=max"),
                *("--label", f"org.opencontainers.image.source={SOURCE}", *args),
                *("--metadata-file", str(meta)),
                *("--output", f"type=image,name={REGISTRY}/{repo}:{tag},push=true", str(ctx)),
            ],
            check=True,
        )
        top = str(json.loads(meta.read_text())["containerimage.digest"])
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    with RegistryClient(REGISTRY) as client:
        pushed = client.get_manifest(repo, top)
        image = image_of(client, repo, pushed, platform).digest
        materials = provenance_of(client, repo, pushed, image).materials
        first = next((m for m in materials if m.platform in ("", platform)), materials[0])
        base = BaseImage(first.name, first.reference, first.digest, platform)
        if sbom:
            attach_sbom(client, repo, image, image, platform, base)
        return Pushed(top, image, image_entries(pushed, platform, None), base)


def attach_sbom(
    client: RegistryClient,
    repo: str,
    subject: str,
    held_by: str,
    platform: str,
    base: BaseImage | None,
) -> str:
    """Attach to `subject` this tool's SBOM naming it and listing what `held_by` holds
    (held_by == subject: a truthful SBOM)."""
    held = client.get_manifest(repo, held_by)
    identity = ImageId(f"{REGISTRY}/{repo}", subject, platform, "", "")
    document = make_sbom(read_contents(client, repo, held), identity, {}, base)
    target = client.get_manifest(repo, subject)
    payload = sbom_bytes(document)
    return attach(
        client, repo, target, SBOM_TYPE, SBOM_TYPE, payload, annotations={}, title="x.cdx.json"
    )
