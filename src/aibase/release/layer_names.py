"""A name for each layer of an image, for the report's chart: the base's layers (a stand-in
says so), each layer group by its name, every other layer by the Dockerfile step that made
it (the image config's history). Pure: the caller reads the history and the base."""

from __future__ import annotations

import re
from collections.abc import Sequence

# Each group's `COPY --link --from=group-<name> /layer/ /` (layers.render_dockerfile) as
# BuildKit records it in the history: the stage's name is not kept, the order is. Images
# built before the groups' layers were reproducible copied to /opt/venv/.
GROUP_STEPS = ("COPY /layer/ /", "COPY /layer/ /opt/venv/")
MAX_NAME = 40  # an x-axis label: long enough for a step, short enough to read
_RUN_PREFIX = re.compile(r"^RUN (\|\d+ (\S+=\S* )*)?(/bin/sh -c )?")


def step_name(created_by: str) -> str:
    """A short name for a history step: `RUN pip check`, `WORKDIR /app`, `ADD rootfs.tar /`."""
    text = created_by.strip().removesuffix("# buildkit").strip()
    if text.startswith("RUN "):
        command = _RUN_PREFIX.sub("", text).replace('"', "")
        if "apt-get install" in command:
            return "RUN apt-get install"
        name = "RUN " + " ".join(command.split("&&", 1)[0].split()[:3])
    else:
        name = " ".join(text.replace('"', "'").split()[:3])
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"


def name_layers(
    steps: Sequence[str], base_layers: int, groups: Sequence[str], stand_in: bool
) -> tuple[str, ...]:
    """One unique name per layer (steps: each layer's history step, base first). Group
    copies are named after the groups only when there are exactly as many as groups."""
    copies = [i for i, step in enumerate(steps) if _is_group_copy(step) and i >= base_layers]
    group_of = dict(zip(copies, groups, strict=True)) if len(copies) == len(groups) else {}
    base = "stand-in base" if stand_in else "base"
    names: list[str] = []
    for i, step in enumerate(steps):
        if i < base_layers:
            name = f"{base} {i + 1}" if base_layers > 1 else base
        elif i in group_of:
            name = f"group {group_of[i]}"
        else:
            name = step_name(step)
        names.append(_unique(name, names))
    return tuple(names)


def _is_group_copy(step: str) -> bool:
    return step.strip().removesuffix("# buildkit").strip() in GROUP_STEPS


def _unique(name: str, taken: Sequence[str]) -> str:
    n, candidate = 1, name
    while candidate in taken:
        n += 1
        candidate = f"{name} ({n})"
    return candidate


def base_layer_count(image_layers: Sequence[str], base_layers: Sequence[str]) -> int:
    """How many of the image's first layers are the base's (its digests, in order); 0 when
    the base read is not a prefix of the image (another base, or it moved since)."""
    n = len(base_layers)
    return n if n and tuple(image_layers[:n]) == tuple(base_layers) else 0
