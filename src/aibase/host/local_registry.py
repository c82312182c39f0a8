"""The embedded default registry on loopback: Debian's `docker-registry` (distribution 2.8)
where it is installed, `registry:2` where that image can be had. It listens on the loopback
address it is named by, never on all interfaces; TLS and htpasswd auth are options (tests of
production-like registries)."""

from __future__ import annotations

import fcntl
import ipaddress
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from aibase import log
from aibase.config.paths import Paths
from aibase.errors import RegistryError, RegistryUnreachable
from aibase.host import engine, proc
from aibase.registry.client import RegistryClient
from aibase.registry.trust import is_loopback

CONTAINER = "aibase-registry"
# The registries this process started, by state folder. The registry outlives the run on
# purpose; its handle is kept so that stop_registry waits for the one it stops and reaps it
# (no zombie, nothing still serving), and so that Python never collects a handle of a process
# still running (a ResourceWarning).
_STARTED: dict[Path, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class LocalRegistry:
    host: str  # 127.0.0.1:PORT / localhost:PORT
    kind: str  # "process" or "container" or "external"
    state_dir: Path


@dataclass(frozen=True)
class Tls:
    certificate: Path
    key: Path


def answers(host: str, timeout: float = 2.0) -> bool:
    """True when /v2/ answers (200, or 401 when auth is on), over TLS or plain HTTP."""
    with RegistryClient(host, credentials=None, timeout=timeout, attempts=1) as client:
        return client.answers()


def listen_address(host: str) -> tuple[str, int]:
    """The loopback address and port to serve `host` on; anything else is refused."""
    name, _, port = host.rpartition(":")
    if not is_loopback(host) or not port.isdigit():
        raise RegistryError(
            f"only a registry on loopback is started here, not {host!r}",
            "use localhost:PORT or 127.0.0.1:PORT, or start your registry yourself",
        )
    address = "127.0.0.1" if name == "localhost" else name.strip("[]")
    return (f"[{address}]" if ipaddress.ip_address(address).version == 6 else address), int(port)


def registry_config(
    address: str, port: int, storage: Path, htpasswd: Path | None, tls: Tls | None
) -> str:
    auth = f"auth: {{htpasswd: {{realm: aibase-test, path: {htpasswd}}}}}\n" if htpasswd else ""
    secure = f", tls: {{certificate: {tls.certificate}, key: {tls.key}}}" if tls else ""
    return (
        "version: 0.1\nlog: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {storage}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: '{address}:{port}'{secure}}}\n" + auth
    )


def start_registry(
    host: str,
    paths: Paths,
    *,
    htpasswd: Path | None = None,
    tls: Tls | None = None,
    wait_s: float = 30,
) -> LocalRegistry:
    """Start a registry on host (loopback) unless one already answers there."""
    address, port = listen_address(host)
    state = paths.registry_dir(port)  # its config, data, log and pid
    if answers(host):
        log.info(f"registry {host}: already answering /v2/")
        return LocalRegistry(host, "external", state)
    if _sweeping(state):  # nothing may push while `clean --registry-gc` sweeps its blobs
        raise RegistryError(
            f"registry {host} is stopped for a garbage sweep (invoke clean --registry-gc)",
            "rerun when the sweep has finished",
        )
    state.mkdir(parents=True, exist_ok=True)
    if shutil.which("docker-registry"):
        cfg = state / "config.yml"
        cfg.write_text(registry_config(address, port, state / "data", htpasswd, tls))
        _serve(state)
        kind = "process"
    elif htpasswd is None and tls is None and engine.image_available("registry:2"):
        result = engine.run_registry_container(f"{CONTAINER}-{port}", port)
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
    _wait(host, state, wait_s)
    log.info(f"registry {host}: up ({kind})")
    return LocalRegistry(host, kind, state)


def _serve(state: Path) -> None:
    argv = ["docker-registry", "serve", str(state / "config.yml")]
    log.echo_command(argv)
    with (state / "registry.log").open("ab") as out:
        child = subprocess.Popen(
            argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
        )
    (state / "pid").write_text(str(child.pid))
    _STARTED[state] = child


def _wait(host: str, state: Path, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if answers(host):
            return
        time.sleep(0.3)
    raise RegistryError(
        f"registry on {host} did not answer within {wait_s:.0f} s", f"see {state / 'registry.log'}"
    )


def collect_garbage(host: str, paths: Paths) -> int:
    """Sweep the blobs no manifest references from the registry this tool runs on host;
    the bytes freed. Distribution's rule: nothing may push during the sweep, so the
    registry is stopped for it and started again with the same config. Without
    --delete-untagged: distribution 2.8 would delete a multi-arch index's platform
    manifests (they carry no tag of their own)."""
    _, port = listen_address(host)
    state = paths.registry_dir(port)
    if not (state / "pid").exists() or not shutil.which("docker-registry"):
        raise RegistryError(
            f"registry {host} is not one this tool started (no {state / 'pid'})",
            "collect its garbage where it runs, or leave out --registry-gc",
        )
    before = _bytes(state / "data")
    with (state / "gc.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # start_registry refuses while this is held
        if not stop_registry(host, paths) or answers(host):
            raise RegistryError(
                f"registry {host} could not be stopped for the sweep",
                f"stop whatever serves {host}, then rerun",
            )
        try:
            argv = ["docker-registry", "garbage-collect", str(state / "config.yml")]
            result = proc.run(argv, timeout=proc.QUICK * 30)
        finally:
            _serve(state)
    _wait(host, state, 30)
    if not result.ok:
        raise RegistryError(
            f"garbage-collect failed: {result.stderr.strip()[-300:]}",
            f"see {state / 'config.yml'}; the registry is running again",
        )
    return before - _bytes(state / "data")


def _sweeping(state: Path) -> bool:
    if not (state / "gc.lock").exists():
        return False
    with (state / "gc.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
    return False


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def ensure_registry(client: RegistryClient, paths: Paths | None) -> None:
    """Fail before anything is built when the target registry is down (asked through the
    run's own client: its CA, its TLS). Only the registry images.toml names, when it is on
    loopback, is started on demand (paths given); any other must already answer."""
    host = client.host
    if client.answers():
        return
    if paths is not None and is_loopback(host):
        log.info(f"registry {host} is not answering: starting the local one images.toml names")
        start_registry(host, paths)
        return
    raise RegistryUnreachable(
        f"registry {host} does not answer /v2/; nothing was built or pushed",
        "start it, or check --registry / AIBASE_REGISTRY (only the loopback registry "
        "images.toml names is started automatically: invoke registry-up)",
    )


def is_our_registry(pid: int, config: Path) -> bool:
    """True when pid is `docker-registry serve <config>`: a recycled pid is someone else."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"docker-registry" in argv[0] and str(config).encode() in argv


def _end(child: subprocess.Popen[bytes], grace_s: float = 30) -> None:
    """Stop a registry this process started and reap it; one still draining a push after
    grace_s is killed, so that nothing keeps serving behind a stop."""
    if child.poll() is None:
        child.terminate()
    try:
        child.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def stop_registry(host: str, paths: Paths) -> bool:
    """Stop a registry this tool started on host; False when there was none."""
    _, port = listen_address(host)
    state = paths.registry_dir(port)
    pid_file = state / "pid"
    stopped = False
    if pid_file.exists():
        pid = int(pid_file.read_text())
        if is_our_registry(pid, state / "config.yml"):
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if not is_our_registry(pid, state / "config.yml"):
                    break
                time.sleep(0.1)
            stopped = True
        else:
            log.warn(f"pid {pid} in {pid_file} is not the registry this tool started: left alone")
        pid_file.unlink()
    started = _STARTED.pop(state, None)
    if started is not None:  # this process's own child: gone and reaped before we return
        _end(started)
        stopped = True
    if engine.remove_container(f"{CONTAINER}-{port}"):
        stopped = True
    return stopped
