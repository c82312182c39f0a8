"""Stand-ins for the base images, for hosts without Docker Hub (tests, air-gapped dev).

A stand-in is Debian 12 (debootstrap, minbase) with what the real base provides that the
Dockerfiles rely on: python3.11 with venv and headers (python:3.11-slim has them); the CUDA
stand-in adds the CUDA_VERSION / NVIDIA_* environment but no CUDA libraries. Each is pushed
as a linux/amd64 + linux/arm64 index to `<mirror>/<path of the real base>`, so the same
Dockerfiles build unchanged once AIBASE_BASE_MIRROR points there. They are test fixtures:
every output that used one says so.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aibase import log
from aibase.config.model import Config
from aibase.config.paths import Paths
from aibase.errors import EngineError
from aibase.host import engine_build, local_registry, proc
from aibase.host.buildx import BuildxBuild, buildx_argv
from aibase.registry.client import RegistryClient
from aibase.registry.refs import parse_ref

SUITE = "bookworm"
# On every stand-in base and so inherited by every image built FROM one (under build.plan's
# LABEL_NS; a unit test holds it there); `<STANDIN_LABEL>.of` names the real base it replaces.
STANDIN_LABEL = "io.cerebral.ai-base.stand-in"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# python3.11-venv needs these whl packages; debootstrap does not resolve them by itself.
INCLUDE = (
    "python3.11",
    "python3.11-venv",
    "python3-distutils",
    "python3-pip-whl",
    "python3-setuptools-whl",
    "python3.11-dev",
)


@dataclass(frozen=True)
class StandIn:
    real: str  # the reference the config names, e.g. python:3.11-slim
    target: str  # where the stand-in goes, e.g. localhost:5000/mirror/library/python:3.11-slim
    cuda_version: str | None  # set for CUDA bases: the env the real image carries


def rootfs_key(arch: str) -> str:
    material = f"{SUITE}|minbase|{arch}|{','.join(INCLUDE)}"
    return f"{SUITE}-{arch}-{hashlib.sha256(material.encode()).hexdigest()[:12]}"


def plan_standins(config: Config, mirror: str) -> tuple[StandIn, ...]:
    seen: dict[str, StandIn] = {}
    refs = [r for v in config.variants.values() for r in (v.base, v.installer_ref)]
    for full in refs:
        ref = full.split("@", 1)[0]  # a digest pin cannot be reproduced by a stand-in
        cuda = None
        if "cuda:" in ref:
            cuda = ref.rsplit(":", 1)[1].split("-", 1)[0]
        seen.setdefault(ref, StandIn(ref, str(parse_ref(ref).mirrored(mirror)), cuda))
    return tuple(seen.values())


def standin_dockerfile(standin: StandIn) -> str:
    env = ["LANG=C.UTF-8"]
    if standin.cuda_version:
        major_minor = ".".join(standin.cuda_version.split(".")[:2])
        env += [
            f"CUDA_VERSION={standin.cuda_version}",
            "NVIDIA_VISIBLE_DEVICES=all",
            "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
            f'NVIDIA_REQUIRE_CUDA="cuda>={major_minor}"',
        ]
    return "\n".join(
        [
            "FROM scratch",
            "ARG TARGETARCH",
            "ADD rootfs-${TARGETARCH}.tar /",
            "ENV " + " ".join(env),
            f'LABEL {STANDIN_LABEL}="true" {STANDIN_LABEL}.of="{standin.real}"',
            'CMD ["bash"]',
            "",
        ]
    )


def ensure_rootfs(arch: str, root: Path) -> Path:
    """Debootstrap once per (suite, arch, package set) into root (Paths.rootfs); later runs
    reuse the tarball."""
    tar = root / f"{rootfs_key(arch)}.tar"
    if tar.exists():
        log.info(f"rootfs {arch}: cached {tar}")
        return tar
    if not shutil.which("debootstrap"):
        raise EngineError(
            "debootstrap not found",
            "run scripts/setup-host-debian.sh (apt-get install debootstrap)",
        )
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        target = Path(tmp) / "rootfs"
        argv = [
            "debootstrap",
            f"--arch={arch}",
            "--variant=minbase",
            f"--include={','.join(INCLUDE)}",
            SUITE,
            str(target),
            DEBIAN_MIRROR,
        ]
        result = proc.run(argv, timeout=proc.LONG)  # arm64 under QEMU: minutes
        if not result.ok:
            raise EngineError(
                f"debootstrap for {arch} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}",
                "arm64 needs qemu-user-static with binfmt (scripts/setup-host-debian.sh)",
            )
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for f in (target / sub).glob("*"):
                if f.is_file():
                    f.unlink()
        tmp_tar = tar.with_suffix(".partial")
        result = proc.run(
            timeout=proc.QUICK * 10,
            argv=[
                "tar",
                "-C",
                str(target),
                "--exclude=./dev/*",
                "--exclude=./proc/*",
                "--exclude=./sys/*",
                "-cf",
                str(tmp_tar),
                ".",
            ],
        )
        if not result.ok:
            raise EngineError(
                f"tar of the {arch} rootfs failed: {result.stderr}", "check free disk"
            )
        tmp_tar.rename(tar)
    return tar


def bootstrap_standins(config: Config, paths: Paths) -> list[str]:
    """Build every stand-in and push it to the base mirror (default: <registry>/mirror),
    starting the local registry when it is the one images.toml names; returns the refs."""
    mirror = config.base_mirror or f"{config.registry}/mirror"
    with RegistryClient(config.registry) as client:
        local_registry.ensure_registry(client, paths)
    pushed = push_standins(config, mirror, config.platforms, paths.rootfs)
    for ref in pushed:
        print(f"stand-in pushed: {ref}")
    print(f"use them with: export AIBASE_BASE_MIRROR={mirror}")
    return pushed


def push_standins(
    config: Config, mirror: str, platforms: tuple[str, ...], rootfs_cache: Path
) -> list[str]:
    """Build and push every stand-in; returns the pushed references."""
    archs = [p.split("/", 1)[1] for p in platforms]
    # side by side: the foreign arch's second stage runs under QEMU for minutes (the largest
    # part of a new machine's CI), and the native one fits beside it on a second core
    with ThreadPoolExecutor(max_workers=len(archs)) as pool:
        made = pool.map(lambda arch: ensure_rootfs(arch, rootfs_cache), archs)
        tars = dict(zip(archs, made, strict=True))
    pushed: list[str] = []
    with tempfile.TemporaryDirectory() as ctx_dir:
        ctx = Path(ctx_dir)
        for arch, tar in tars.items():
            dest = ctx / f"rootfs-{arch}.tar"
            if _same_fs(tar, ctx):
                os.link(tar, dest)  # no 250 MB copy when the cache is on the same disk
            else:
                shutil.copy(tar, dest)
        for standin in plan_standins(config, mirror):
            (ctx / "Dockerfile").write_text(standin_dockerfile(standin))
            log.info(f"STAND-IN: {standin.target} is Debian {SUITE}, NOT {standin.real}")
            build = BuildxBuild(
                ctx,
                platforms,
                progress=None,
                provenance=False,
                output=("type=image", f"name={standin.target}", "push=true"),
            )
            engine_build.build_and_push(buildx_argv(build), f"the stand-in for {standin.real}")
            pushed.append(standin.target)
    return pushed


def _same_fs(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev
