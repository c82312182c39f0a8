"""The embedded default registry on loopback: `registry:2` where it can be had, Debian's
`docker-registry` (distribution 2.8, the same API) on hosts without Docker Hub."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from aibase import log, proc
from aibase.bases import cache_dir
from aibase.errors import RegistryError

CONTAINER = "aibase-registry"


@dataclass(frozen=True)
class LocalRegistry:
    host: str  # 127.0.0.1:PORT / localhost:PORT
    kind: str  # "process" or "container" or "external"
    state_dir: Path


def answers(host: str, timeout: float = 2.0) -> bool:
    """True when /v2/ answers (200, or 401 when auth is on)."""
    try:
        resp = httpx.get(f"http://{host}/v2/", timeout=timeout)
    except httpx.TransportError:
        return False
    return resp.status_code in (200, 401)


def _port(host: str) -> int:
    name, _, port = host.rpartition(":")
    if name not in ("localhost", "127.0.0.1") or not port.isdigit():
        raise RegistryError(
            f"registry-up only starts a registry on loopback, not {host!r}",
            "use localhost:PORT, or start your registry yourself and pass --registry",
        )
    return int(port)


def registry_config(port: int, storage: Path, htpasswd: Path | None) -> str:
    auth = f"auth: {{htpasswd: {{realm: aibase-test, path: {htpasswd}}}}}\n" if htpasswd else ""
    return (
        "version: 0.1\nlog: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {storage}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n" + auth
    )


def state_dir_for(port: int) -> Path:
    return cache_dir() / f"registry-{port}"


def start_registry(host: str, htpasswd: Path | None = None, wait_s: float = 30) -> LocalRegistry:
    """Start a registry on host (loopback) unless one already answers there."""
    port = _port(host)
    state = state_dir_for(port)
    if answers(host):
        log.info(f"registry {host}: already answering /v2/")
        return LocalRegistry(host, "external", state)
    state.mkdir(parents=True, exist_ok=True)
    if shutil.which("docker-registry"):
        cfg = state / "config.yml"
        cfg.write_text(registry_config(port, state / "data", htpasswd))
        argv = ["docker-registry", "serve", str(cfg)]
        log.echo_command(argv)
        with (state / "registry.log").open("ab") as out:
            child = subprocess.Popen(
                argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
            )
        (state / "pid").write_text(str(child.pid))
        kind = "process"
    elif htpasswd is None and _docker_image_usable("registry:2"):
        result = proc.run(
            [
                "docker",
                "run",
                "-d",
                "--restart",
                "unless-stopped",
                "--name",
                f"{CONTAINER}-{port}",
                "-p",
                f"127.0.0.1:{port}:5000",
                "registry:2",
            ]
        )
        if not result.ok:
            raise RegistryError(
                f"could not start registry:2: {result.stderr.strip()}",
                f"free port {port} or remove the container {CONTAINER}-{port}",
            )
        kind = "container"
    else:
        raise RegistryError(
            f"no registry to start on {host}: neither docker-registry nor the registry:2 image",
            "apt-get install docker-registry (scripts/setup-host-debian.sh does it)",
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if answers(host):
            log.info(f"registry {host}: up ({kind})")
            return LocalRegistry(host, kind, state)
        time.sleep(0.3)
    raise RegistryError(
        f"registry on {host} did not answer within {wait_s:.0f} s", f"see {state / 'registry.log'}"
    )


def ensure_registry(host: str, *, start_if_default: str) -> None:
    """Fail before anything is built when the target registry is down; only the embedded
    default (a loopback registry this tool manages) is started on demand."""
    if answers(host):
        return
    if host == start_if_default:
        log.info(f"registry {host} is not answering: starting the local default")
        start_registry(host)
        return
    raise RegistryError(
        f"registry {host} does not answer /v2/; nothing was built or pushed",
        f"start it, or check --registry / AIBASE_REGISTRY (only {start_if_default}, the local "
        "default, is started automatically: invoke registry-up)",
    )


def _docker_image_usable(image: str) -> bool:
    if proc.run(["docker", "image", "inspect", image], echo=False).ok:
        return True
    return proc.run(["docker", "pull", image], timeout=60).ok


def stop_registry(host: str) -> bool:
    """Stop a registry this tool started on host; False when there was none."""
    port = _port(host)
    state = state_dir_for(port)
    pid_file = state / "pid"
    stopped = False
    if pid_file.exists():
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
        except ProcessLookupError:
            pass
        pid_file.unlink()
        stopped = True
    if proc.run(["docker", "rm", "-f", f"{CONTAINER}-{port}"], echo=False).ok:
        stopped = True
    return stopped
