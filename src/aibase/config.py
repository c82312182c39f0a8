"""images.toml -> validated, frozen configuration.

Every error names the file, the key path and what is allowed. Overrides follow one
precedence: CLI flag > environment (AIBASE_*) > images.toml.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from aibase.errors import ConfigError

DEFAULT_CONFIG = "images.toml"
KNOWN_PLATFORMS = (
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/386",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
)
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_VERSION_RE = re.compile(r"^\d+(\.\d+)*$")
_PYTHON_RE = re.compile(r"^3\.\d+$")
_REPO_RE = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
_REGISTRY_RE = re.compile(r"^[A-Za-z0-9.-]+(:\d+)?$")

_PROJECT_KEYS = {"repository", "registry", "platforms", "source", "title"}
_VARIANT_KEYS = {
    "dockerfile",
    "base",
    "python",
    "description",
    "size_budget_mb",
    "torch",
    "requirements",
    "lock_dir",
    "platforms",
    "heavy_roots",
}
_TORCH_KEYS = {"torch", "torchvision", "torchaudio"}
_PLATFORM_KEYS = {"torch_index", "cuda"}


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
    def os(self) -> str:
        return self.platform.split("/")[0]

    @property
    def arch(self) -> str:
        return self.platform.split("/", 1)[1].replace("/", "")

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

    def heavy_lock_file(self, platform: str) -> Path:
        """The torch family (and what it needs), installed as its own layer."""
        return self.lock_dir / f"{self.name}-{self.platform(platform).slug}.torch.txt"

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
    platforms: tuple[str, ...]
    variants: Mapping[str, VariantConfig]
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

    def base_for(self, variant: VariantConfig) -> str:
        """The base reference a build uses, redirected to the mirror when one is set."""
        return mirror_reference(variant.base, self.base_mirror)


@dataclass(frozen=True)
class Overrides:
    """Values from CLI flags or AIBASE_* variables; None means 'not given'."""

    registry: str | None = None
    repository: str | None = None
    platforms: str | None = None
    base_mirror: str | None = None


ENV_OVERRIDES = {
    "registry": "AIBASE_REGISTRY",
    "repository": "AIBASE_REPOSITORY",
    "platforms": "AIBASE_PLATFORMS",
    "base_mirror": "AIBASE_BASE_MIRROR",
}


def resolve_overrides(cli: Overrides, env: Mapping[str, str] | None = None) -> Overrides:
    """Merge CLI flags over AIBASE_* variables (flag > env); images.toml comes last."""
    env = os.environ if env is None else env
    merged: dict[str, str | None] = {}
    for attr, var in ENV_OVERRIDES.items():
        flag = getattr(cli, attr)
        merged[attr] = flag if flag not in (None, "") else (env.get(var) or None)
    return Overrides(**merged)


def config_path(explicit: str | None = None, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(explicit or env.get("AIBASE_CONFIG") or DEFAULT_CONFIG)


def mirror_reference(ref: str, mirror: str | None) -> str:
    """`python:3.11-slim` + `localhost:5000/m` -> `localhost:5000/m/library/python:3.11-slim`.

    Docker Hub short names get their implicit `library/` namespace, so a mirror holds the
    same path a pull-through cache would.
    """
    if not mirror:
        return ref
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        path = f"{first}/{rest}"  # keep the source registry in the path: no collisions
    elif rest:
        path = ref
    else:
        path = f"library/{ref}"
    return f"{mirror.rstrip('/')}/{path}"


def load_config(
    path: str | Path | None = None,
    overrides: Overrides | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Read, validate and freeze a config file, then apply overrides (flag > env > file)."""
    cfg_path = config_path(str(path) if path else None, env)
    try:
        text = cfg_path.read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"{cfg_path}: file not found",
            "run from the repository root or pass --config / set AIBASE_CONFIG",
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{cfg_path}: not valid TOML: {exc}", "fix the syntax") from None
    config = parse_config(data, cfg_path)
    return apply_overrides(config, resolve_overrides(overrides or Overrides(), env))


def apply_overrides(config: Config, ov: Overrides) -> Config:
    where = _Where(config.path)
    changes: dict[str, Any] = {}
    if ov.registry:
        changes["registry"] = _registry(ov.registry, where.at("AIBASE_REGISTRY / --registry"))
    if ov.repository:
        changes["repository"] = _repository(
            ov.repository, where.at("AIBASE_REPOSITORY / --repository")
        )
    if ov.platforms:
        w = where.at("AIBASE_PLATFORMS / --platforms")
        plats = tuple(_platform(p.strip(), w) for p in ov.platforms.split(",") if p.strip())
        if not plats:
            where.fail("AIBASE_PLATFORMS / --platforms", "is empty", "name at least one platform")
        for variant in config.variants.values():
            missing = [p for p in plats if p not in variant.platforms]
            if missing:
                where.fail(
                    "AIBASE_PLATFORMS / --platforms",
                    f"names {', '.join(missing)}, which variant {variant.name!r} does not define",
                    f'add [variants.{variant.name}.platforms."{missing[0]}"] or drop it',
                )
        changes["platforms"] = plats
    if ov.base_mirror:
        changes["base_mirror"] = _registry_path(
            ov.base_mirror, where.at("AIBASE_BASE_MIRROR / --base-mirror")
        )
    return replace(config, **changes) if changes else config


@dataclass(frozen=True)
class _Where:
    """Formats errors as `file: key.path: problem (allowed)`."""

    path: Path
    key: str = ""

    def at(self, key: str) -> _Where:
        return _Where(self.path, key)

    def child(self, key: str) -> _Where:
        sep = "" if key.startswith("[") else "."
        return _Where(self.path, f"{self.key}{sep}{key}" if self.key else key)

    def fail(self, key: str | None, problem: str, fix: str) -> None:
        raise ConfigError(f"{self.path}: {key or self.key}: {problem}", fix)


def parse_config(data: Mapping[str, Any], path: Path) -> Config:
    root = _Where(path)
    _keys(data, {"project", "variants"}, root, required={"project", "variants"})
    project = _table(data["project"], root.child("project"))
    pw = root.child("project")
    _keys(project, _PROJECT_KEYS, pw, required={"repository", "registry", "platforms"})
    platforms = _platform_list(project["platforms"], pw.child("platforms"))
    variants_raw = _table(data["variants"], root.child("variants"))
    if not variants_raw:
        root.fail("variants", "defines no variant", "add at least one [variants.NAME] table")
    cfg_root = path.resolve().parent
    variants = {
        name: _variant(name, raw, root.child("variants").child(name), platforms, cfg_root)
        for name, raw in variants_raw.items()
    }
    return Config(
        path=path,
        root=cfg_root,
        repository=_repository(project["repository"], pw.child("repository")),
        registry=_registry(project["registry"], pw.child("registry")),
        source=_str(project.get("source", ""), pw.child("source"), allow_empty=True),
        title=_str(project.get("title", "ai-base"), pw.child("title")),
        platforms=platforms,
        variants=variants,
    )


def _variant(
    name: str, raw: Any, w: _Where, platforms: tuple[str, ...], root: Path
) -> VariantConfig:
    if not _NAME_RE.match(name):
        w.fail(None, "variant names are lower-case letters, digits, '-' and '_'", "rename it")
    table = _table(raw, w)
    _keys(
        table,
        _VARIANT_KEYS,
        w,
        required={"dockerfile", "base", "python", "size_budget_mb", "requirements", "platforms"},
    )
    python = _str(table["python"], w.child("python"))
    if not _PYTHON_RE.match(python):
        w.child("python").fail(None, f"{python!r} is not a Python minor version", 'e.g. "3.11"')
    budget = table["size_budget_mb"]
    if not isinstance(budget, int) or isinstance(budget, bool) or budget <= 0:
        w.child("size_budget_mb").fail(None, f"{budget!r} is not a positive integer", "e.g. 4000")
    torch = None
    if "torch" in table:
        tw = w.child("torch")
        t = _table(table["torch"], tw)
        _keys(t, _TORCH_KEYS, tw, required=_TORCH_KEYS)
        for key in _TORCH_KEYS:
            value = _str(t[key], tw.child(key))
            if not _VERSION_RE.match(value):
                tw.child(key).fail(None, f"{value!r} is not a release version", 'e.g. "2.4.1"')
        torch = TorchSpec(t["torch"], t["torchvision"], t["torchaudio"])
    reqs = table["requirements"]
    if not isinstance(reqs, list) or not reqs or not all(isinstance(r, str) for r in reqs):
        w.child("requirements").fail(
            None, "must be a non-empty list of .in file paths", 'e.g. ["requirements/common.in"]'
        )
    heavy = table.get("heavy_roots", ["torch", "torchvision", "torchaudio"] if torch else [])
    if not isinstance(heavy, list) or not all(isinstance(h, str) and h for h in heavy):
        w.child("heavy_roots").fail(None, "must be a list of package names", 'e.g. ["numpy"]')
    plats_w = w.child("platforms")
    plats_raw = _table(table["platforms"], plats_w)
    specs: dict[str, PlatformSpec] = {}
    for plat, spec_raw in plats_raw.items():
        pw = plats_w.child(f'["{plat}"]')
        _platform(plat, pw)
        raw_spec = _table(spec_raw, pw)
        _keys(raw_spec, _PLATFORM_KEYS, pw)
        index = raw_spec.get("torch_index")
        if index is not None:
            index = _str(index, pw.child("torch_index"))
            if not index.startswith(("https://", "http://", "file://")):
                pw.child("torch_index").fail(
                    None, f"{index!r} is not a URL", 'e.g. "https://download.pytorch.org/whl/cpu"'
                )
        cuda = raw_spec.get("cuda")
        if cuda is not None:
            cuda = _str(cuda, pw.child("cuda"), allow_empty=True) or None
            if cuda is not None and not _VERSION_RE.match(cuda):
                pw.child("cuda").fail(None, f"{cuda!r} is not a CUDA version", 'e.g. "12.1"')
        if cuda and torch is None:
            pw.child("cuda").fail(
                None,
                "a CUDA expectation needs a [torch] table on the variant",
                "add the torch versions or remove the cuda key",
            )
        specs[plat] = PlatformSpec(plat, index, cuda)
    missing = [p for p in platforms if p not in specs]
    if missing:
        plats_w.fail(
            None,
            f"missing required platform(s) {', '.join(missing)} (project.platforms)",
            f'add [variants.{name}.platforms."{missing[0]}"]',
        )
    dockerfile = Path(_str(table["dockerfile"], w.child("dockerfile")))
    variant = VariantConfig(
        name=name,
        dockerfile=_resolve(root, dockerfile),
        base=_image_ref(table["base"], w.child("base")),
        python=python,
        description=_str(table.get("description", f"ai-base {name}"), w.child("description")),
        size_budget_mb=budget,
        torch=torch,
        requirements=tuple(_resolve(root, Path(r)) for r in reqs),
        lock_dir=_resolve(root, Path(_str(table.get("lock_dir", "requirements/locks"), w))),
        platforms=specs,
        heavy_roots=tuple(heavy),
    )
    if name == "cpu" or dockerfile.name.endswith(".cpu"):
        # a cpu image must not promise CUDA anywhere
        for spec in specs.values():
            if spec.cuda:
                plats_w.child(f'["{spec.platform}"]').child("cuda").fail(
                    None,
                    f"variant {name!r} builds from a cpu Dockerfile and cannot promise CUDA",
                    "remove the cuda key (cpu images carry no CUDA)",
                )
    return variant


def _resolve(root: Path, p: Path) -> Path:
    return p if p.is_absolute() else (root / p).resolve()


def _keys(
    table: Mapping[str, Any], allowed: set[str], w: _Where, required: set[str] | None = None
) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            w.child(key).fail(
                None, f"unknown key{hint}", f"allowed keys here: {', '.join(sorted(allowed))}"
            )
    for key in sorted(required or set()):
        if key not in table:
            w.child(key).fail(None, "missing required field", f"add `{key} = ...`")


def _table(value: Any, w: _Where) -> dict[str, Any]:
    if not isinstance(value, dict):
        w.fail(
            None, f"must be a table, got {type(value).__name__}", "see images.toml for the shape"
        )
    return cast(dict[str, Any], value)


def _str(value: Any, w: _Where, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not allow_empty):
        w.fail(None, f"must be a non-empty string, got {value!r}", "quote the value")
    return value  # type: ignore[no-any-return]


def _platform(value: str, w: _Where) -> str:
    if value not in KNOWN_PLATFORMS:
        close = difflib.get_close_matches(value, KNOWN_PLATFORMS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        w.fail(
            None,
            f"{value!r} is not a platform buildx knows{hint}",
            f"use os/arch, one of: {', '.join(KNOWN_PLATFORMS)}",
        )
    return value


def _platform_list(value: Any, w: _Where) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        w.fail(None, "must be a non-empty list", 'e.g. ["linux/amd64", "linux/arm64"]')
    out: list[str] = []
    for i, item in enumerate(value):
        iw = w.child(f"[{i}]")
        _platform(_str(item, iw), iw)
        if item in out:
            iw.fail(None, f"{item!r} listed twice", "list each platform once")
        out.append(item)
    return tuple(out)


def _repository(value: Any, w: _Where) -> str:
    repo = _str(value, w)
    if not _REPO_RE.match(repo):
        w.fail(None, f"{repo!r} is not a repository path", 'lower-case, e.g. "cerebral/ai-base"')
    return repo


def _registry(value: Any, w: _Where) -> str:
    reg = _str(value, w)
    if not _REGISTRY_RE.match(reg):
        w.fail(None, f"{reg!r} is not a registry host[:port]", 'e.g. "localhost:5000"')
    return reg


def _registry_path(value: str, w: _Where) -> str:
    host, _, path = value.partition("/")
    _registry(host, w)
    if path and not _REPO_RE.match(path.rstrip("/")):
        w.fail(None, f"{value!r} is not host[:port][/path]", 'e.g. "localhost:5000/mirror"')
    return value.rstrip("/")


_IMAGE_REF_RE = re.compile(
    r"^[A-Za-z0-9._/:-]+?(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(@sha256:[0-9a-f]{64})?$"
)


def _image_ref(value: Any, w: _Where) -> str:
    ref = _str(value, w)
    if not _IMAGE_REF_RE.match(ref) or ref.endswith((":", "/")):
        w.fail(
            None,
            f"{ref!r} is not an image reference",
            'e.g. "python:3.11-slim" or "python:3.11-slim@sha256:<64 hex>"',
        )
    return ref
