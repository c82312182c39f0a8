"""What an image is built from, named once: the files whose content decides what a cell's
build makes. promote refuses an index built while one of them was not what the commit its
revision label names holds (`release.pipeline.promote_checked` asks git).
"""

from __future__ import annotations

from pathlib import Path

from aibase.audit.allowlist import DEFAULT_ALLOWLIST
from aibase.config.model import Config, VariantConfig

PACKAGE = Path(__file__).resolve().parents[1]  # src/aibase, where the modules below live

# The code that turns the templates and the locks into a cell's Dockerfile (build.layers)
# and its build command, with its labels (build.plan), and every module they import: a
# unit test holds the list to their imports, so a new renderer module cannot be left out.
RENDERER = (
    "audit.allowlist",
    "build.layers",
    "build.lock_format",
    "build.plan",
    "config.model",
    "errors",
    "host.buildx",
    "names",
    "registry.refs",
)


def module_file(name: str) -> Path:
    """`build.layers` -> src/aibase/build/layers.py."""
    return PACKAGE.joinpath(*name.split(".")).with_suffix(".py")


def build_inputs(config: Config, variant: VariantConfig, checkout: Path) -> tuple[Path, ...]:
    """Every file a build of the variant reads: images.toml; the allowlist beside it (its
    entries become the accepted-vulnerabilities label); the whole build context (template,
    install-group.sh, .dockerignore: an uncommitted script changes every layer group); the
    requirements and the locks of every required platform; and the renderer's modules
    when the tool runs from `checkout` (an installed tool is its own release)."""
    context = sorted(p for p in variant.dockerfile.parent.iterdir() if p.is_file())
    code = [module_file(m) for m in RENDERER]
    return (
        config.path,
        config.root / DEFAULT_ALLOWLIST,
        *context,
        *variant.requirements,
        *(variant.lock_file(p) for p in config.required_platforms),
        *(p for p in code if p.is_relative_to(checkout)),
    )
