"""Where things go on disk: one place for the output layout and the host cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    out: Path  # --out / AIBASE_OUT: run records and reports of this checkout
    cache: Path  # --cache / AIBASE_CACHE: survives checkouts (rootfs tarballs, registry data)

    @property
    def cells(self) -> Path:
        """One record per built cell: what a CI cell job hands to the merge job."""
        return self.out / "cells"

    @property
    def state(self) -> Path:
        return self.out / "state"

    @property
    def reports(self) -> Path:
        return self.out / "reports"

    @property
    def audit(self) -> Path:
        return self.out / "audit"

    @property
    def rootfs(self) -> Path:
        return self.cache / "rootfs"

    def cell_record(self, slug: str) -> Path:
        return self.cells / f"{slug}.json"

    def rendered(self, slug: str) -> Path:
        """A cell's rendered Dockerfile and its groups' requirements (build/layers.py)."""
        return self.out / "dockerfiles" / slug

    def build_metadata(self, slug: str) -> Path:
        return self.cells / f"{slug}.metadata.json"

    @property
    def smoke(self) -> Path:
        """One record per platform smoke test (a CI smoke job hands it to promote)."""
        return self.out / "smoke"

    def smoke_record(self, variant: str, platform: str, *, gpu: bool = False) -> Path:
        """A GPU runner's result has a name of its own: both reach promote side by side."""
        kind = ".gpu" if gpu else ""
        return self.smoke / f"{variant}-{platform.replace('/', '-')}{kind}.json"

    def variant_state(self, repository: str, variant: str) -> Path:
        return self.state / f"{repository.replace('/', '_')}-{variant}.json"

    def registry_dir(self, port: int) -> Path:
        return self.cache / f"registry-{port}"
