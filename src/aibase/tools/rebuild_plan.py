"""Pure planning for `./ai rebuild-check` (`rebuild_check` runs it): what the index says it
was built from, which of its layers are the Python ones and what each is called, where the
rebuild runs, and published against rebuilt, layer by layer. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aibase.build.plan import LABEL_NS
from aibase.errors import ConfigError, NotReproduced
from aibase.registry.refs import ImageRef

REVISION_LABEL = "org.opencontainers.image.revision"
VARIANT_LABEL = f"{LABEL_NS}.variant"
# the history's steps of the layers the groups' files and the report make (build/layers.py)
GROUP_STEP, REPORT_STEP = "COPY /layer/ ", "COPY /report/ "
REPORT_NAME = "layers-check report"


@dataclass(frozen=True)
class Layer:
    step: str  # the history step that made it
    digest: str
    media_type: str


@dataclass(frozen=True)
class PublishedImage:
    platform: str
    digest: str
    layers: tuple[Layer, ...]


@dataclass(frozen=True)
class Published:
    """What the index says about itself: the commit, the variant, each platform's layers."""

    ref: ImageRef
    revision: str
    variant: str
    images: tuple[PublishedImage, ...]


@dataclass(frozen=True)
class RebuildPlan:
    published: Published
    platforms: tuple[str, ...]
    worktree: Path
    builder: str | None  # --builder B; None: a private engine started for the check
    # the private engine's RUN steps: it has no bridge network; the given builder's own
    network: str | None

    def uncached(self, groups: Sequence[str]) -> tuple[str, ...]:
        """The stages run again although a given builder's cache may hold them (buildx's
        no-cache filter); none on the private engine, whose cache is empty."""
        if not self.builder:
            return ()
        return (*(f"group-{g}" for g in groups), "layers-check", "image")

    def worktree_argv(self, top: Path) -> tuple[str, ...]:
        """What a dry run prints first (each build's command needs the worktree's files)."""
        rev = self.published.revision
        return ("git", "-C", str(top), "worktree", "add", "--detach", str(self.worktree), rev)


@dataclass(frozen=True)
class LayerResult:
    platform: str
    name: str  # the group, or the layers-check report
    published: str  # digest ("" when the rebuild has a layer the index lacks)
    rebuilt: str
    difference: str = ""  # the first differing file and how; "" when reproduced

    @property
    def reproduced(self) -> bool:
        return self.published == self.rebuilt

    def line(self) -> str:
        what = "reproduced" if self.reproduced else f"differs: {self.difference}"
        return f"{self.platform:<12} {self.name:<24} {what}"


def image_layers(manifest: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[Layer, ...]:
    history = config.get("history") or []
    steps = [h.get("created_by", "") for h in history if not h.get("empty_layer")]
    layers = manifest.get("layers", [])
    if len(steps) != len(layers):  # then no layer can be named by the step that made it
        raise NotReproduced(
            f"an image's history names {len(steps)} layers, its manifest holds {len(layers)}",
            "pass an index that build-all pushed: its history names every layer",
        )
    return tuple(
        Layer(step, x["digest"], x.get("mediaType", ""))
        for step, x in zip(steps, layers, strict=True)
    )


def python_layers(layers: Sequence[Layer], groups: Sequence[str]) -> list[tuple[str, Layer]]:
    """(name, layer) of the groups' layers, in order, and the report's."""
    names = iter(groups)
    found = []
    for layer in layers:
        if layer.step.startswith(GROUP_STEP):
            found.append((next(names, "?"), layer))
        elif layer.step.startswith(REPORT_STEP):
            found.append((REPORT_NAME, layer))
    return found


def pair_layers(
    platform: str, published: Sequence[tuple[str, Layer]], rebuilt: Sequence[tuple[str, Layer]]
) -> list[LayerResult]:
    """Published against rebuilt, by position (a group gone or added is a difference)."""
    results = []
    for i in range(max(len(published), len(rebuilt))):
        old = published[i] if i < len(published) else None
        new = rebuilt[i] if i < len(rebuilt) else None
        name = (old or new or ("?", None))[0]
        results.append(
            LayerResult(platform, name, old[1].digest if old else "", new[1].digest if new else "")
        )
    return results


def compression_of(layers: Sequence[Layer]) -> str:
    """The compression the published layers have, which the rebuild must use too."""
    return "zstd" if any(x.media_type.endswith("+zstd") for x in layers) else "gzip"


def plan_rebuild(
    published: Published, platform: str, *, work: Path, builder: str | None
) -> RebuildPlan:
    """platform: "" every platform the index holds. builder: --builder B, else None (the
    private engine: empty, so nothing needs to be marked uncached)."""
    held = tuple(i.platform for i in published.images)
    if platform and platform not in held:
        raise ConfigError(
            f"{published.ref} holds no {platform} image (it holds {', '.join(held)})",
            "pass one of those to --platform, or leave it out",
        )
    return RebuildPlan(
        published,
        (platform,) if platform else held,
        work / "worktree",
        builder,
        None if builder else "host",
    )
