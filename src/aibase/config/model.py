"""The configuration as frozen values: what gets built, where it goes, what each image
promises. `config.loader` reads and validates images.toml into these."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aibase.errors import ConfigError
from aibase.registry.refs import parse_ref

KNOWN_PLATFORMS = (
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/386",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
)


@dataclass(frozen=True)
class TorchSpec:
    torch: str
    torchvision: str
    torchaudio: str

    def requirements(self) -> tuple[str, ...]:
        return (
            f"torch=={self.torch}",
            f"torchvision=={self.torchvision}",
            f"torchaudio=={self.torchaudio}",
        )


@dataclass(frozen=True)
class PlatformSpec:
    """What one platform of a variant gets: where torch comes from, which CUDA it reports."""

    platform: str
    torch_index: str | None  # None: PyPI
    cuda: str | None  # None: the torch build must report no CUDA

    @property
    def slug(self) -> str:
        """`linux/amd64` -> `linux-amd64` (file names, tags)."""
        return self.platform.replace("/", "-")


@dataclass(frozen=True)
class VariantConfig:
    name: str
    dockerfile: Path
    base: str
    python: str
    description: str
    size_budget_mb: int
    torch: TorchSpec | None
    requirements: tuple[Path, ...]
    lock_dir: Path
    platforms: Mapping[str, PlatformSpec]
    # roots of the first pip layer (rarely changes, large): the torch family by default
    heavy_roots: tuple[str, ...] = ()
    own_layers: tuple[str, ...] = ()  # more distributions that get a layer each (build/layers.py)
    layer_bins: int = 12  # the long tail's layers
    installer: str = ""  # a python image of the build platform that installs the groups

    def platform(self, platform: str) -> PlatformSpec:
        try:
            return self.platforms[platform]
        except KeyError:
            raise ConfigError(
                f"variant {self.name!r} has no platform {platform!r}",
                f"use one of: {', '.join(self.platforms)}",
            ) from None

    def lock_file(self, platform: str) -> Path:
        """The full hash-locked requirements of one platform."""
        return self.lock_dir / f"{self.name}-{self.platform(platform).slug}.txt"

    @property
    def installer_ref(self) -> str:
        return self.installer or f"python:{self.python}-slim"

    @property
    def cuda_capable(self) -> bool:
        return any(p.cuda for p in self.platforms.values())


@dataclass(frozen=True)
class Config:
    path: Path
    root: Path
    repository: str
    registry: str
    source: str
    title: str
    platforms: tuple[str, ...]  # what this run builds: images.toml's, or an override
    variants: Mapping[str, VariantConfig]
    required_platforms: tuple[str, ...] = ()  # images.toml's alone: what a floating tag serves
    file_registry: str = ""  # images.toml's registry: the one started on demand on loopback
    file_sha256: str = ""
    base_mirror: str | None = None

    def variant(self, name: str) -> VariantConfig:
        try:
            return self.variants[name]
        except KeyError:
            raise ConfigError(
                f"unknown variant {name!r} (in {self.path})",
                f"use one of: {', '.join(self.variants)}",
            ) from None

    def select(self, names: str | None) -> tuple[VariantConfig, ...]:
        """`None` or '' -> all variants; 'a,b' -> those, each validated."""
        if not names:
            return tuple(self.variants.values())
        return tuple(self.variant(n.strip()) for n in names.split(",") if n.strip())

    @property
    def image(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def config_digest(self) -> str:
        """What decides an image besides the commit: the file's bytes, where it goes and
        where its bases come from. Run records carry it; merge refuses records without it."""
        material = "\n".join(
            [self.file_sha256, self.registry, self.repository, self.base_mirror or ""]
        )
        return hashlib.sha256(material.encode()).hexdigest()

    def base_for(self, variant: VariantConfig) -> str:
        """The base reference a build uses, redirected to the mirror when one is set."""
        return self.mirrored(variant.base)

    def installer_for(self, variant: VariantConfig) -> str:
        """The image that installs the layer groups natively, mirrored like the base."""
        return self.mirrored(variant.installer_ref)

    def mirrored(self, ref: str) -> str:
        if not self.base_mirror:
            return ref
        return str(parse_ref(ref).mirrored(self.base_mirror))
