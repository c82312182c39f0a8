"""The local registry's life on this host (no engine needed): it listens on loopback only,
registry-down signals only the process it started, and the host setup script finds what a
host lacks (its --dry-run, with PATH narrowed to fake engines). `invoke clean --dry-run`
counts on the engine (engine_ready: it fails in CI without one instead of passing on nothing)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
import uuid
from pathlib import Path

import httpx
import pytest

from aibase.config.paths import Paths
from aibase.host import local_registry
from aibase.registry.client import RegistryClient

from .conftest import IT_REPO, copy_fixture, forget_promotions, invoke, push_image

REPO = Path(__file__).resolve().parents[2]


def test_registry_down_leaves_a_recycled_pid_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = Paths(tmp_path / "out", tmp_path / "cache")
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        state = paths.registry_dir(5099)
        state.mkdir(parents=True)
        (state / "pid").write_text(str(bystander.pid))  # a stale pid, now someone else's
        assert local_registry.stop_registry("127.0.0.1:5099", paths) is False
        assert bystander.poll() is None  # still running
        assert "is not the registry this tool started: left alone" in capsys.readouterr().err
        assert not (state / "pid").exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_the_local_registry_listens_on_loopback_only(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "out", tmp_path / "cache")
    host = "127.0.0.1:5098"
    local_registry.start_registry(host, paths)
    try:
        config = (paths.registry_dir(5098) / "config.yml").read_text()
        assert "addr: '127.0.0.1:5098'" in config
        listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        assert "127.0.0.1:5098" in listening and "0.0.0.0:5098" not in listening
        assert "*:5098" not in listening and "[::]:5098" not in listening
    finally:
        assert local_registry.stop_registry(host, paths) is True
    assert not local_registry.answers(host)


SCRIPT = REPO / "scripts" / "setup-host-debian.sh"


def _dry_run(
    tmp_path: Path, dockerd_version: str | None, *, bare: bool = False
) -> subprocess.CompletedProcess[str]:
    """The script's --dry-run with PATH holding /usr/bin, /bin and at most a fake dockerd;
    bare: a dpkg that knows no package, as on a brand-new machine."""
    fake = tmp_path / "bin"
    fake.mkdir(parents=True)
    if bare:
        (fake / "dpkg").write_text('#!/bin/sh\n[ "$1" = -s ] && exit 1\nexec /usr/bin/dpkg "$@"\n')
        (fake / "dpkg").chmod(0o755)
    if dockerd_version is not None:
        dockerd = fake / "dockerd"
        dockerd.write_text(f"#!/bin/sh\necho 'Docker version {dockerd_version}, build x'\n")
        dockerd.chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run(
        ["bash", str(SCRIPT), "--dry-run"], env=env, capture_output=True, text=True, timeout=30
    )


def test_a_host_with_a_docker_cli_but_no_dockerd_gets_the_engine(tmp_path: Path) -> None:
    # A brand-new CI machine had /usr/local/bin/docker and no dockerd: the version probe
    # failed under pipefail and the script exited 127 without a word.
    done = _dry_run(tmp_path, None)
    assert done.returncode == 0, done.stderr
    assert "would install: docker.io" in done.stderr


def test_a_new_host_gets_buildah_for_the_daemonless_build(tmp_path: Path) -> None:
    """docs/services.md's daemonless block (run by test_examples) needs buildah."""
    done = _dry_run(tmp_path, "26.1.5+dfsg1", bare=True)
    assert done.returncode == 0, done.stderr
    assert "buildah" in done.stderr.split("would install:")[1].splitlines()[0].split()


def test_an_old_engine_is_upgraded_and_a_new_one_kept(tmp_path: Path) -> None:
    old = _dry_run(tmp_path / "old", "20.10.24+dfsg1")
    assert old.returncode == 0, old.stderr
    assert "docker.io" in old.stderr.split("would install:")[1].splitlines()[0]
    new = _dry_run(tmp_path / "new", "26.1.5+dfsg1")
    assert new.returncode == 0, new.stderr
    assert "docker.io" not in new.stderr.split("would install:")[1].splitlines()[0]


def test_an_unknown_argument_is_refused() -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT), "--bogus"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "the only option is --dry-run" in done.stderr


def test_registry_gc_sweeps_an_unreferenced_blob_and_serves_again(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "out", tmp_path / "cache")
    host = "127.0.0.1:5012"
    local_registry.start_registry(host, paths)
    try:
        blob = os.urandom(3_000_000)  # an upload no manifest refers to: a killed push's
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        with httpx.Client(base_url=f"http://{host}", timeout=30) as http:
            started = http.post("/v2/gc/test/blobs/uploads/")
            assert started.status_code == 202, started.text
            location = started.headers["location"]  # carries the upload's state in its query
            put = http.put(
                f"{location}{'&' if '?' in location else '?'}digest={digest}",
                content=blob,
                headers={"Content-Type": "application/octet-stream"},
            )
            assert put.status_code == 201, put.text
            assert http.head(f"/v2/gc/test/blobs/{digest}").status_code == 200
        freed = local_registry.collect_garbage(host, paths)
        assert freed >= len(blob)
        with httpx.Client(base_url=f"http://{host}", timeout=30) as http:
            assert http.get("/v2/").status_code == 200  # started again, same config
            assert http.head(f"/v2/gc/test/blobs/{digest}").status_code == 404
    finally:
        assert local_registry.stop_registry(host, paths)  # its new pid was recorded


def _docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"  # never a silent ""
    return done.stdout


@pytest.mark.alone  # counts the engine's images, which other workers change
@pytest.mark.usefixtures("engine_ready")
def test_clean_dry_run_counts_and_changes_nothing(tmp_path: Path) -> None:
    """Two images planted under a repository of the test's own (one with the registry in its
    name, one without): the dry run counts exactly those and removes nothing."""
    repo = f"cerebral/ai-base-cleantest-{uuid.uuid4().hex[:8]}"
    planted = (f"localhost:5000/{repo}:a", f"{repo}:b")
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as tar:
        (tmp_path / "hello").write_text("hello\n")
        tar.add(tmp_path / "hello", arcname="hello")
    try:
        _docker("image", "import", str(layer), planted[0])
        _docker("tag", planted[0], planted[1])
        before = set(_docker("image", "ls", "-q", "--no-trunc").split())
        cfg = copy_fixture(tmp_path / "fx")
        cfg.write_text(cfg.read_text().replace(f'"{IT_REPO}"', f'"{repo}"'))
        run = invoke("clean", "--dry-run", "--config", str(cfg), "--out", str(tmp_path / "out"))
        assert run.returncode == 0, run.output
        assert f"2 local image(s) of {repo}; the builder's cache" in run.output
        assert "dry run: would remove them, prune the build cache" in run.output
        after = set(_docker("image", "ls", "-q", "--no-trunc").split())
        assert before and before <= after  # nothing removed
        for ref in planted:
            _docker("image", "inspect", ref)
    finally:
        subprocess.run(["docker", "image", "rm", *planted], capture_output=True, check=False)


def test_a_registry_under_a_sweep_is_not_started_by_a_second_run(tmp_path: Path) -> None:
    import fcntl

    from aibase.errors import RegistryError

    paths = Paths(tmp_path / "out", tmp_path / "cache")
    state = paths.registry_dir(5013)
    state.mkdir(parents=True)
    with (state / "gc.lock").open("a") as lock:  # what collect_garbage holds while it sweeps
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(RegistryError, match="stopped for a garbage sweep"):
            local_registry.start_registry("127.0.0.1:5013", paths)
    assert not local_registry.answers("127.0.0.1:5013")


def test_a_session_forgets_what_an_earlier_one_promoted(registry: str, tmp_path: Path) -> None:
    """What another branch's session promoted on this host would make this session's promote
    refuse as a rollback; a session starts with nothing promoted (forget_promotions). Its own
    repository here: the session's fixture index must survive this test."""
    repo = "cerebral/ai-base-forget"
    pushed = push_image("FROM scratch\nCOPY Dockerfile /\n", f"{registry}/{repo}:fixture", tmp_path)
    with RegistryClient(registry) as client:
        digest = client.head_manifest(repo, "fixture")
        assert digest, pushed
        assert forget_promotions(repo) == [digest]
        assert client.head_manifest(repo, "fixture") is None
        assert forget_promotions(repo) == []  # nothing left: a second session finds nothing
