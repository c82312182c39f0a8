"""images.toml -> validated, frozen `Config`, with the settings applied on top.

Every error names the file (or the flag or variable), the key path and what is allowed.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from aibase.config import validate as vd
from aibase.config.model import Config, PlatformSpec, TorchSpec, VariantConfig
from aibase.config.precedence import file_keys, file_values, resolve
from aibase.config.resolved import Settings
from aibase.config.settings import SettingName, environ
from aibase.config.validate import Where
from aibase.errors import ConfigError

_PROJECT_KEYS = {"repository", "registry", "platforms", "source", "title"}  # and settings' keys
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
    "own_layers",
    "layer_bins",
    "installer",
}
_VARIANT_REQUIRED = {"dockerfile", "base", "python", "size_budget_mb", "requirements", "platforms"}
_TORCH_KEYS = {"torch", "torchvision", "torchaudio"}
_PLATFORM_KEYS = {"torch_index", "cuda"}


def read_config(path: Path) -> Config:
    """Read and validate one file, as written (no settings applied)."""
    return parse_config(*read_toml(path))


def read_toml(path: Path) -> tuple[dict[str, Any], Path, str]:
    """The file's TOML, its path and its sha256."""
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(
            f"{path}: file not found",
            "run inside the checkout, or pass --config / set AIBASE_CONFIG",
        ) from None
    try:
        data = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", "fix the syntax") from None
    return data, path, hashlib.sha256(raw).hexdigest()


def load(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    names: Sequence[str] | None = None,
) -> tuple[Settings, Config]:
    """Resolve the settings (flag > env > file > default; `names`: those a task takes, None:
    all) and the config they select."""

    def read(path: Path) -> dict[str, Any]:
        data, _, sha256 = read_toml(path)
        files.append(parse_config(data, path, sha256))
        return file_values(data)

    files: list[Config] = []
    env = environ() if env is None else env
    settings = resolve(flags or {}, env, read, cwd or Path.cwd(), names)
    return settings, apply_settings(files[0], settings)


def load_config(
    path: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """The config alone (tests, helpers); `path` acts as --config."""
    return load({**(flags or {}), "config": str(path) if path else ""}, env)[1]


def apply_settings(config: Config, settings: Settings) -> Config:
    """Flag and environment values over the file's; errors name the flag or variable."""
    changes: dict[str, Any] = {}

    def given(name: SettingName) -> Where | None:
        r = settings.resolved[name]
        if r.source not in ("flag", "env"):
            return None
        return Where(None, r.setting.flag if r.source == "flag" else r.setting.env)

    if w := given("registry"):
        changes["registry"] = vd.registry(settings.registry, w)
    if w := given("repository"):
        changes["repository"] = vd.repository(settings.repository, w)
    if w := given("platforms"):
        plats = tuple(vd.platform(p, w) for p in settings.platforms)
        for variant in config.variants.values():
            missing = [p for p in plats if p not in variant.platforms]
            if missing:
                w.fail(
                    None,
                    f"names {', '.join(missing)}, which variant {variant.name!r} does not define",
                    f'add [variants.{variant.name}.platforms."{missing[0]}"] or drop it',
                )
        changes["platforms"] = plats
    if (w := given("base_mirror")) and settings.base_mirror:
        changes["base_mirror"] = vd.registry_path(settings.base_mirror, w)
    return replace(config, **changes) if changes else config


def parse_config(data: Mapping[str, Any], path: Path, sha256: str = "") -> Config:
    root = Where(path)
    vd.check_keys(data, {"project", "variants"}, root, required={"project", "variants"})
    pw = root.child("project")
    project = vd.table(data["project"], pw)
    keys = _PROJECT_KEYS | file_keys()
    vd.check_keys(project, keys, pw, required={"repository", "registry", "platforms"})
    platforms = vd.platform_list(project["platforms"], pw.child("platforms"))
    variants_raw = vd.table(data["variants"], root.child("variants"))
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
        repository=vd.repository(project["repository"], pw.child("repository")),
        registry=vd.registry(project["registry"], pw.child("registry")),
        source=vd.string(project.get("source", ""), pw.child("source"), allow_empty=True),
        title=vd.string(project.get("title", "ai-base"), pw.child("title")),
        platforms=platforms,
        variants=variants,
        required_platforms=platforms,
        file_registry=vd.registry(project["registry"], pw.child("registry")),
        file_sha256=sha256,
    )


def _torch(raw: Any, w: Where) -> TorchSpec:
    t = vd.table(raw, w)
    vd.check_keys(t, _TORCH_KEYS, w, required=_TORCH_KEYS)
    for key in _TORCH_KEYS:
        value = vd.string(t[key], w.child(key))
        if not vd.VERSION_RE.fullmatch(value):
            w.child(key).fail(None, f"{value!r} is not a release version", 'e.g. "2.4.1"')
    return TorchSpec(t["torch"], t["torchvision"], t["torchaudio"])


def _platform_spec(plat: str, raw: Any, w: Where, has_torch: bool) -> PlatformSpec:
    vd.platform(plat, w)
    spec = vd.table(raw, w)
    vd.check_keys(spec, _PLATFORM_KEYS, w)
    index = spec.get("torch_index")
    if index is not None:
        index = vd.index_url(vd.string(index, w.child("torch_index")), w.child("torch_index"))
    cuda = spec.get("cuda")
    if cuda is not None:
        cuda = vd.string(cuda, w.child("cuda"), allow_empty=True) or None
        if cuda is not None and not vd.VERSION_RE.fullmatch(cuda):
            w.child("cuda").fail(None, f"{cuda!r} is not a CUDA version", 'e.g. "12.1"')
    if cuda and not has_torch:
        w.child("cuda").fail(
            None,
            "a CUDA expectation needs a [torch] table on the variant",
            "add the torch versions or remove the cuda key",
        )
    return PlatformSpec(plat, index, cuda)


def _variant(
    name: str, raw: Any, w: Where, platforms: tuple[str, ...], root: Path
) -> VariantConfig:
    if not vd.NAME_RE.fullmatch(name):
        w.fail(None, "variant names are lower-case letters, digits, '-' and '_'", "rename it")
    table = vd.table(raw, w)
    vd.check_keys(table, _VARIANT_KEYS, w, required=_VARIANT_REQUIRED)
    python = vd.string(table["python"], w.child("python"))
    if not vd.PYTHON_RE.fullmatch(python):
        w.child("python").fail(None, f"{python!r} is not a Python minor version", 'e.g. "3.11"')
    budget = table["size_budget_mb"]
    if not isinstance(budget, int) or isinstance(budget, bool) or budget <= 0:
        w.child("size_budget_mb").fail(None, f"{budget!r} is not a positive integer", "e.g. 4000")
    torch = _torch(table["torch"], w.child("torch")) if "torch" in table else None
    reqs = table["requirements"]
    if not isinstance(reqs, list) or not reqs or not all(isinstance(r, str) for r in reqs):
        w.child("requirements").fail(
            None, "must be a non-empty list of .in file paths", 'e.g. ["requirements/common.in"]'
        )
    heavy = table.get("heavy_roots", ["torch", "torchvision", "torchaudio"] if torch else [])
    if not isinstance(heavy, list) or not all(isinstance(h, str) and h for h in heavy):
        w.child("heavy_roots").fail(None, "must be a list of package names", 'e.g. ["numpy"]')
    own = table.get("own_layers", ["triton"] if torch else [])
    if not isinstance(own, list) or not all(isinstance(h, str) and h for h in own):
        w.child("own_layers").fail(None, "must be a list of package names", 'e.g. ["scipy"]')
    bins = table.get("layer_bins", 12)
    if not isinstance(bins, int) or isinstance(bins, bool) or not 1 <= bins <= 40:
        w.child("layer_bins").fail(None, f"{bins!r} is not a number from 1 to 40", "e.g. 12")
    plats_w = w.child("platforms")
    specs = {
        plat: _platform_spec(plat, spec, plats_w.child(f'["{plat}"]'), torch is not None)
        for plat, spec in vd.table(table["platforms"], plats_w).items()
    }
    missing = [p for p in platforms if p not in specs]
    if missing:
        plats_w.fail(
            None,
            f"missing required platform(s) {', '.join(missing)} (project.platforms)",
            f'add [variants.{name}.platforms."{missing[0]}"]',
        )
    dockerfile = Path(vd.string(table["dockerfile"], w.child("dockerfile")))
    if name == "cpu" or dockerfile.name.endswith(".cpu"):
        for spec in specs.values():  # a cpu image must not promise CUDA anywhere
            if spec.cuda:
                plats_w.child(f'["{spec.platform}"]').child("cuda").fail(
                    None,
                    f"variant {name!r} builds from a cpu Dockerfile and cannot promise CUDA",
                    "remove the cuda key (cpu images carry no CUDA)",
                )
    lock_dir = vd.string(table.get("lock_dir", "requirements/locks"), w.child("lock_dir"))
    return VariantConfig(
        name=name,
        dockerfile=vd.resolve_path(root, dockerfile),
        base=vd.image_ref(table["base"], w.child("base")),
        python=python,
        description=vd.string(table.get("description", f"ai-base {name}"), w.child("description")),
        size_budget_mb=budget,
        torch=torch,
        requirements=tuple(vd.resolve_path(root, Path(r)) for r in reqs),
        lock_dir=vd.resolve_path(root, Path(lock_dir)),
        platforms=specs,
        heavy_roots=tuple(heavy),
        own_layers=tuple(own),
        layer_bins=bins,
        installer=vd.image_ref(
            table.get("installer", f"python:{python}-slim"), w.child("installer")
        ),
    )
