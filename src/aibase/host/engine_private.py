"""A private Docker Engine for one run (rebuild-check's isolated, empty builder): a dockerd of
its own in a temporary data root, so its image store and build cache start empty and every
stage really runs; nothing of the shared engine's (cache, cache mounts, images) is used.

Reached through DOCKER_HOST, with buildx's state (its current builder, build records) in a
BUILDX_CONFIG folder inside that root: the user's engine and ~/.docker are left as they are.
It gets a bridge of its own (the host's docker0 is the shared engine's: a second dockerd
would take it over, or delete it under `--bridge none`). Stopped (SIGTERM, then a kill), its
bridge deleted and its root removed afterwards, on failure and interrupt too.
With `host.engine` and `host.engine_build`, a module that runs `docker`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aibase import log
from aibase.errors import EngineError
from aibase.host import proc

START_S = 60.0  # it answers in ~5 s here; a cold containerd on a slow disk takes longer
STOP_S = 30.0
# its own config file: the host's /etc/docker/daemon.json (hosts, data-root, mirrors) is not
# read; the containerd image store is what pushes a cell's provenance with the docker driver
DAEMON_CONFIG = {"features": {"containerd-snapshotter": True}}
FIX = "install the Docker Engine (bash scripts/setup-host-debian.sh), or pass --builder B"


@dataclass(frozen=True)
class PrivateEngine:
    """Where one private engine keeps everything: all of it under `root`."""

    root: Path

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def bridge(self) -> str:
        """Its own bridge (a name of at most 15 characters). Without one, dockerd shares and,
        with `--bridge none`, deletes the host's docker0 (moby removeDefaultBridgeInterface),
        breaking the shared engine's builds."""
        return f"aibase-{self.root.name.rsplit('-', 1)[-1][:8]}"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def env(self) -> dict[str, str]:
        """What a `docker` command needs to talk to it, and only to it."""
        return {"DOCKER_HOST": self.host, "BUILDX_CONFIG": str(self.root / "buildx")}


def plan_engine(parent: Path | None = None) -> PrivateEngine:
    """A fresh root's name (not made yet): `aibase-engine-XXXXXXXX` in the temp folder."""
    return PrivateEngine(
        (parent or Path(tempfile.gettempdir())) / f"aibase-engine-{os.urandom(4).hex()}"
    )


def dockerd_argv(engine: PrivateEngine) -> tuple[str, ...]:
    """Its own bridge, no iptables, no ip_forward: it leaves the host's network and the shared
    engine's docker0 alone (its builds run with --network host: the bridge has no NAT)."""
    root = engine.root
    return (
        *("dockerd", "--config-file", str(root / "daemon.json")),
        *("--data-root", str(engine.data_root), "--exec-root", str(root / "exec")),
        *("--pidfile", str(root / "dockerd.pid"), "--host", engine.host),
        *("--bridge", engine.bridge, "--iptables=false", "--ip6tables=false"),
        "--ip-forward=false",
    )


def bridge_argv(engine: PrivateEngine, verb: str) -> tuple[str, ...]:
    """verb: "add" before dockerd starts (it uses, never makes, a bridge of another name), or
    "delete" after it stopped."""
    kind = ("type", "bridge") if verb == "add" else ()
    return ("ip", "link", verb, engine.bridge, *kind)


def dockerd_version() -> str:
    """`dockerd --version`'s number, e.g. 26.1.5; an error saying how to get it when absent."""
    if shutil.which("dockerd") is None:
        raise EngineError("dockerd is not on PATH: rebuild-check runs a private engine", FIX)
    result = proc.run(["dockerd", "--version"], echo=False, timeout=proc.QUICK)
    words = result.stdout.replace(",", " ").split()
    return words[2] if result.ok and len(words) > 2 else "(version unknown)"


@contextmanager
def private_engine(engine: PrivateEngine) -> Iterator[PrivateEngine]:
    """Start it and wait until it answers; stop it and remove its root afterwards."""
    engine.root.mkdir(mode=0o700, parents=True)
    child = None
    bridged = False
    try:
        (engine.root / "daemon.json").write_text(json.dumps(DAEMON_CONFIG))
        added = proc.run(bridge_argv(engine, "add"), timeout=proc.QUICK)
        if not added.ok:
            raise EngineError(
                f"could not add the private engine's bridge: {added.stderr.strip()[-300:]}",
                "it needs root and iproute2 (`ip`); or pass --builder B to build elsewhere",
            )
        bridged = True
        child = proc.start(dockerd_argv(engine), engine.root / "dockerd.log")
        _wait_until_up(engine, child.poll)
        yield engine
    finally:
        if child is not None:
            _stop(child.pid, child.poll)
        if bridged and not proc.run(bridge_argv(engine, "delete"), timeout=proc.QUICK).ok:
            log.warn(f"bridge {engine.bridge} is left behind: ip link delete {engine.bridge}")
        _remove(engine)


def _wait_until_up(engine: PrivateEngine, exited: Callable[[], int | None]) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if proc.run(["docker", "--host", engine.host, "version"], echo=False, timeout=30).ok:
            return
        if exited() is not None:
            break
        time.sleep(0.5)
    tail = _log_tail(engine)
    raise EngineError(
        f"the private Docker Engine did not answer within {START_S:.0f} s; dockerd: {tail}",
        "dockerd runs as root only; see its last words, or pass --builder B to build elsewhere",
    )


def _log_tail(engine: PrivateEngine) -> str:
    try:
        lines = (engine.root / "dockerd.log").read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(lines[-3:])[-600:]


def _stop(pid: int, exited: Callable[[], int | None]) -> None:
    """SIGTERM, then a kill after STOP_S; reaped either way (`exited` polls the child)."""
    # dockerd alone first (it stops its containerd itself); then its whole session
    for kill, sig in ((os.kill, signal.SIGTERM), (os.killpg, signal.SIGKILL)):
        with contextlib.suppress(ProcessLookupError):
            kill(pid, sig)
        deadline = time.monotonic() + STOP_S
        while exited() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if exited() is not None:
            return
        log.warn(f"dockerd {pid} did not stop within {STOP_S:.0f} s after {sig.name}")


def mounts_under(root: Path, mountinfo: str) -> list[str]:
    """The mount points below root, deepest first (a killed engine can leave overlays)."""
    points = [line.split()[4] for line in mountinfo.splitlines() if len(line.split()) > 4]
    inside = [p for p in points if p == str(root) or p.startswith(f"{root}/")]
    return sorted(inside, key=len, reverse=True)


def _remove(engine: PrivateEngine) -> None:
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    except OSError:
        mountinfo = ""
    for point in mounts_under(engine.root, mountinfo):
        proc.run(["umount", "--lazy", point], timeout=proc.QUICK)
    shutil.rmtree(engine.root, ignore_errors=True)
    if engine.root.exists():
        log.warn(f"the private engine's root {engine.root} is left behind: rm -rf {engine.root}")
