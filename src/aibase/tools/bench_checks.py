"""What keeps `./ai bench` honest, as pure checks: a cold build must build every step (no
CACHED step in its plain progress), no other build may run on the engine while a step is
timed (one seen in the process table), and each figure is the median of repeated runs, shown
with its minimum. The bench (tools/bench.py) reads the output and the processes; these judge.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from aibase.host.activity import Entry

_STEP = re.compile(r"^#(\d+) (\[.+?\] .*)$", re.M)
_CACHED = re.compile(r"^#(\d+) CACHED\s*$", re.M)
# clients whose subcommands build images (the docker CLI runs buildx as a plugin of that
# name), the groups a build subcommand may sit in, and the subcommands
_CLIENTS = {"docker", "docker-buildx", "nerdctl", "podman"}
_GROUPS = {"buildx", "builder", "image", "compose"}
_BUILD_WORDS = {"build", "bake"}
_BUILDAH_BUILDS = {"bud", "build", "commit"}


def cached_steps(progress: str, among: str = "") -> list[str]:
    """The steps a build's plain progress (`--progress plain`) says came from the cache,
    by name (`[group-numpy 2/2] RUN ...`), in order; `among`: only those whose name holds
    it (a bump's group, `[group-bin-02 `). FROM is left out: a base image the engine's
    store already holds shows as CACHED on the docker driver, even after a prune; pulling
    it is not building it."""
    names = dict(_STEP.findall(progress))
    out: list[str] = []
    for step in _CACHED.findall(progress):
        name = names.get(step, f"#{step}")
        if not re.match(r"^\[.+?\] FROM ", name) and among in name and name not in out:
            out.append(name)
    return out


def is_build(argv: Sequence[str]) -> bool:
    """A client that makes the engine build: `docker buildx build`, `docker build`, `docker
    buildx bake`, `buildctl build`, `buildah bud`, ... (not `docker buildx ls` or `prune`)."""
    if not argv:
        return False
    name = PurePosixPath(argv[0]).name
    words = [a for a in argv[1:8] if not a.startswith("-")][:3]
    if name in _CLIENTS:
        command = words[1:2] if words[:1] and words[0] in _GROUPS else words[:1]
        return bool(_BUILD_WORDS & set(command))
    if name == "buildctl":
        return "build" in words
    if name == "buildah":
        return bool(_BUILDAH_BUILDS & set(words[:1]))
    return False


def foreign_builds(table: Sequence[Entry], own: int) -> list[str]:
    """The build clients running that are not this process or its descendants (the bench's
    own builds): another build sharing the engine would slow every step it overlaps."""
    parent = {p.pid: p.ppid for p in table}

    def ours(pid: int) -> bool:
        seen: set[int] = set()
        while pid and pid not in seen:
            if pid == own:
                return True
            seen.add(pid)
            pid = parent.get(pid, 0)
        return False

    return [p.line() for p in table if is_build(p.argv) and not ours(p.pid)]


@dataclass(frozen=True)
class Timing:
    """One figure, measured `len(runs)` times (seconds)."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return round(statistics.median(self.runs), 1) if self.runs else 0.0

    @property
    def min(self) -> float:
        return min(self.runs) if self.runs else 0.0

    def cell(self) -> str:
        """`12.3` for one run, `12.3 (min 11.9, n=2)` for more: the table's text."""
        if len(self.runs) < 2:
            return f"{self.median:.1f}"
        return f"{self.median:.1f} (min {self.min:.1f}, n={len(self.runs)})"


def new_bytes(before: Mapping[str, int], after: Mapping[str, int]) -> int:
    """What pushing `after` (layer digest -> bytes) adds where `before` is: the layers it
    does not share."""
    return sum(n for digest, n in after.items() if digest not in before)
