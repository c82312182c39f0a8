"""Layer groups: the locked environment split into image layers that change independently.

Each group is a build stage that installs its packages natively (the build platform's
python and uv fetch the target platform's wheels: no emulation), and the image takes each
with `COPY --link`, so a one-pin bump rebuilds and re-pushes one group's layer only.
Pure: the groups come from the lock's text, the Dockerfile from its template.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from aibase.build.lock_format import (
    UV_PLATFORMS,
    VIA_RE,
    parse_lock,
    split_blocks,
    split_header,
    torch_family,
)
from aibase.config.model import VariantConfig
from aibase.errors import ConfigError
from aibase.names import normalize_name

STAGES_MARK = "# @ai-base:group-stages"
LAYERS_MARK = "# @ai-base:group-layers"
MAX_LAYERS = 60  # overlayfs stacks at most ~128; leave room for the services built on top
# Every file in a group's layer and in the report's has this mtime (docker/install-group.sh):
# a constant, so an unchanged group gives the same layer digest on any builder, any day, in
# any commit. 1980-01-01, the oldest time a zip (a wheel built from the venv) can hold.
LAYER_EPOCH = 315532800
GROUP_VENV = "/layer/opt/venv"  # where a group stage leaves its files (install-group.sh)
REPORT = "/report/opt/ai-base"  # the layers-check stage's report, at its path in the image


@dataclass(frozen=True)
class LayerGroup:
    name: str  # the stage is `group-<name>`, its requirements `<name>.txt`
    packages: tuple[str, ...]  # normalised names, sorted


def bin_of(name: str, bins: int) -> int:
    """A stable bin: adding or bumping one package changes only its own bin's layer."""
    return int(hashlib.sha256(normalize_name(name).encode()).hexdigest(), 16) % bins


def plan_groups(names: Sequence[str], variant: VariantConfig) -> tuple[LayerGroup, ...]:
    """One group per distribution that is large on its own (the torch family and heavy
    roots, every nvidia-* CUDA library, images.toml's own_layers), then the long tail in
    `layer_bins` hashed bins; empty bins are left out."""
    if "pip" in {normalize_name(n) for n in names}:  # its files would land over the venv's pip
        raise ConfigError(
            f"variant {variant.name!r}: the lock pins pip; the image's venv brings its own",
            "remove pip from the requirements (.in files), then `invoke lock`",
        )
    own = {normalize_name(n) for n in (*variant.heavy_roots, *variant.own_layers)}
    singles: list[LayerGroup] = []
    bins: dict[int, list[str]] = {}
    for name in sorted({normalize_name(n) for n in names}):
        if name in own or name.startswith("nvidia-"):
            singles.append(LayerGroup(name, (name,)))
        else:
            bins.setdefault(bin_of(name, variant.layer_bins), []).append(name)
    tail = [LayerGroup(f"bin-{k:02d}", tuple(bins[k])) for k in sorted(bins)]
    groups = (*singles, *tail)
    clash = {g.name for g in singles} & {g.name for g in tail}
    if clash:  # a package named like a bin would share its stage and file
        raise ConfigError(
            f"variant {variant.name!r}: package {sorted(clash)[0]!r} is named like a layer bin",
            "report it: layers.py must name its bins differently",
        )
    if len(groups) > MAX_LAYERS - 10:
        raise ConfigError(
            f"variant {variant.name!r}: {len(groups)} layer groups (at most {MAX_LAYERS - 10})",
            "lower layer_bins or shorten own_layers in images.toml",
        )
    return groups


def group_requirements(lock_text: str, group: LayerGroup, served: Sequence[str] = ()) -> str:
    """The group's part of the lock: its pins and hashes, without `# via` lines (they
    name other packages, whose bumps must not touch this group's layer). The lock's option
    line (the torch index) goes only to groups holding a package that index `served`:
    every other wheel is fetched from the default index, as the lock resolved it."""
    _, body = split_header(lock_text)
    options = "".join(ln + "\n" for ln in body.splitlines() if ln.startswith("--"))
    if not set(group.packages) & set(served):
        options = ""
    blocks = split_blocks(lock_text)
    pins = "".join(
        "".join(ln + "\n" for ln in blocks[name].splitlines() if not VIA_RE.match(ln))
        for name in group.packages
    )
    return options + pins


def render_cell(
    template: str, lock_text: str, variant: VariantConfig, platform: str
) -> dict[str, str]:
    """A cell's rendered files: `Dockerfile` and `groups/<group>.txt` for each group."""
    if platform not in UV_PLATFORMS:
        raise ConfigError(
            f"no native install for {platform}: uv platforms known: {', '.join(UV_PLATFORMS)}",
            "build one of those platforms",
        )
    groups = plan_groups(tuple(parse_lock(lock_text)), variant)
    served = torch_family(variant)
    files = {f"groups/{g.name}.txt": group_requirements(lock_text, g, served) for g in groups}
    files["Dockerfile"] = render_dockerfile(
        template,
        groups,
        uv_platform=UV_PLATFORMS[platform],
        python=variant.python,
        lock_name=variant.lock_file(platform).name,
    )
    return files


def render_dockerfile(
    template: str, groups: Sequence[LayerGroup], *, uv_platform: str, python: str, lock_name: str
) -> str:
    """The template with one install stage per group and one `COPY --link` per group."""
    for mark in (STAGES_MARK, LAYERS_MARK):
        if template.count(mark) != 1:
            raise ConfigError(
                f"the Dockerfile template must hold the line {mark!r} exactly once",
                "restore it from docker/Dockerfile.ai-base.cpu",
            )
    stages = "".join(_stage(g, uv_platform, python) for g in groups)
    stages += _check_stage(groups, lock_name)
    # to /, not /opt/venv/: /layer holds opt/venv itself, so no parent gets the copy's clock
    copies = "".join(f"COPY --link --from=group-{g.name} /layer/ /\n" for g in groups)
    # the check's report with the lock: one layer (it changes with every bump anyway),
    # and copied, so the build cannot skip the stage that checks
    copies += "COPY --link --from=layers-check /report/ /\n"
    return template.replace(STAGES_MARK + "\n", stages).replace(LAYERS_MARK + "\n", copies)


def _check_stage(groups: Sequence[LayerGroup], lock_name: str) -> str:
    """No two distributions write one file differently, across groups or within one
    (docker/check-layers.py); the groups are bind-mounted, not copied: seconds, natively.
    The report's files get the groups' fixed mtime: an unchanged lock, an unchanged layer."""
    mounts = "".join(
        f"    --mount=type=bind,from=group-{g.name},source={GROUP_VENV},target=/groups/{g.name}"
        " \\\n"
        for g in groups
    )
    # each group's reading is kept by its RECORDs' digest: a bump walks one group again
    mounts += "    --mount=type=cache,id=layers-check,target=/cache \\\n"
    return (
        "FROM installer AS layers-check\n"
        f"COPY --from=locks {lock_name} {REPORT}/locks/requirements.txt\n"
        f"RUN {mounts.lstrip()}    check-layers /groups /cache > {REPORT}/layers.txt \\\n"
        f' && find /report -exec touch -h -d "@{LAYER_EPOCH}" {{}} +\n\n'
    )


def _stage(group: LayerGroup, uv_platform: str, python: str) -> str:
    return (
        f"FROM installer AS group-{group.name}\n"
        f"COPY --from=groups {group.name}.txt /tmp/requirements.txt\n"
        "RUN --mount=type=cache,id=uv-cache,target=/root/.cache/uv \\\n"
        "    --mount=type=secret,id=ca_bundle,target=/run/secrets/ca.pem \\\n"
        "    --mount=type=secret,id=pip_index_url,target=/run/secrets/pip_index_url \\\n"
        f"    install-group /tmp/requirements.txt {uv_platform} {python} {LAYER_EPOCH}\n\n"
    )
