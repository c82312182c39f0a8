"""The build inputs, named once (build.inputs): every module the Dockerfile renderer and the
build plan import is one, and an uncommitted input, whichever, blocks promote."""

from __future__ import annotations

import pytest

from aibase.audit.allowlist import DEFAULT_ALLOWLIST
from aibase.build.inputs import RENDERER, build_inputs, module_file
from aibase.config.loader import load_config
from aibase.config.model import Config

from .conftest import REPO, WriteConfig
from .test_architecture import MAP


@pytest.mark.parametrize("root", ["build.layers", "build.plan"])
def test_every_module_the_renderer_imports_is_an_input(root: str) -> None:
    """A module the renderer comes to import is an input the day it is imported, or this
    fails: the list cannot fall behind the code silently."""
    assert MAP.reach(root) <= set(RENDERER), sorted(MAP.reach(root) - set(RENDERER))


def test_the_listed_modules_exist_and_nothing_else_is_listed() -> None:
    assert all(module_file(m).is_file() for m in RENDERER)
    assert set(RENDERER) == MAP.reach("build.layers") | MAP.reach("build.plan")


def with_variant_folder(cfg: Config) -> Config:
    """The cpu variant's build context beside the config: its template and a script."""
    folder = cfg.variant("cpu").dockerfile.parent
    folder.mkdir(parents=True, exist_ok=True)
    cfg.variant("cpu").dockerfile.write_text("FROM scratch\n")
    (folder / "install-group.sh").write_text("exit 0\n")
    return cfg


def test_the_inputs_name_the_allowlist_the_context_and_the_renderer(
    write_config: WriteConfig,
) -> None:
    cfg = with_variant_folder(load_config(write_config(), env={}))
    inputs = build_inputs(cfg, cfg.variant("cpu"), checkout=REPO)
    folder = cfg.variant("cpu").dockerfile.parent
    assert cfg.root / DEFAULT_ALLOWLIST in inputs and cfg.path in inputs
    assert {folder / "install-group.sh", cfg.variant("cpu").dockerfile} <= set(inputs)
    assert REPO / "src" / "aibase" / "names.py" in inputs
    # an installed tool (its code outside the checkout) is its own release
    elsewhere = build_inputs(cfg, cfg.variant("cpu"), checkout=cfg.root)
    assert not [p for p in elsewhere if p.suffix == ".py"]
