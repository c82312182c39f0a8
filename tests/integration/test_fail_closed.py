"""The promotion promise against a hurried user and a second CI run, on the real engine and
registry: overrides, two runs, a run killed halfway, a broken image, lying index entries, a
TLS registry with a password. Each test works in a repository of its own so that the
floating tags the other tests check are never touched here."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from aibase.config.paths import Paths
from aibase.errors import (
    ConfigError,
    PromoteError,
    SmokeError,
    StateError,
    Timeout,
)
from aibase.host import engine, proc
from aibase.host.local_registry import start_registry, stop_registry
from aibase.registry import oci
from aibase.registry.client import RegistryClient
from aibase.release.smoke import NO_GPU

from .attested import push_attested
from .conftest import (
    FIXTURE_CONFIG,
    REGISTRY,
    Built,
    PytestRun,
    copy_fixture,
    docker_login,
    env_for,
    floating_digest,
    invoke,
    invoke_in_background,
    make_tls,
    run_smoke_suite,
)

pytestmark = pytest.mark.engine
CFG = ("--config", str(FIXTURE_CONFIG))
RACE_REPO = "cerebral/ai-base-race"


def _report(out: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(
        sorted((out / "reports").glob("build-*.json"))[-1].read_text()
    )
    return report


@pytest.mark.alone  # asserts on the whole registry or the fixture's floating tags
@pytest.mark.usefixtures("built")
def test_an_override_never_narrows_what_a_floating_tag_requires(tmp_path: Path) -> None:
    before = floating_digest()
    run = invoke(
        "build-all",
        *CFG,
        "--repository",
        "cerebral/ai-base-fixture",
        env=env_for(tmp_path, AIBASE_PLATFORMS="linux/amd64"),
    )
    assert run.returncode == ConfigError.exit_code
    assert "AIBASE_PLATFORMS=linux/amd64 leaves out linux/arm64; nothing was built" in run.output
    assert "docker buildx build" not in run.output
    assert floating_digest() == before
    # a narrowed copy of images.toml builds, verifies and smokes; it is not promoted
    narrowed = copy_fixture(tmp_path / "fx")
    narrowed.write_text(
        narrowed.read_text().replace(
            'platforms = ["linux/amd64", "linux/arm64"]', 'platforms = ["linux/amd64"]'
        )
    )
    run = invoke(
        "build-all",
        "--config",
        str(narrowed),
        "--repository",
        "cerebral/ai-base-fixture",
        env=env_for(tmp_path / "out"),
    )
    assert "<== smoke fixture: ok" in run.output
    assert run.returncode == PromoteError.exit_code
    assert "built from files that are not what commit" in run.output
    assert str(narrowed) in run.output
    assert floating_digest() == before


@pytest.mark.usefixtures("standins")
def test_two_runs_of_one_commit_neither_share_tags_nor_overwrite_each_other(tmp_path: Path) -> None:
    """Run A verifies without promoting; run B (same commit, same day) builds and promotes;
    A's promote then finds the tag moved since it verified, and refuses."""
    repo = ("--repository", RACE_REPO)
    a, b = tmp_path / "a", tmp_path / "b"
    before = floating_digest(RACE_REPO), floating_digest(RACE_REPO, "fixture-py3.11")
    run_a = invoke("build-all", *CFG, *repo, "--no-promote", env=env_for(a))
    assert run_a.returncode == 0, run_a.output[-3000:]
    # --no-promote: neither the floating tag nor the descriptive one moved
    assert (floating_digest(RACE_REPO), floating_digest(RACE_REPO, "fixture-py3.11")) == before
    run_b = invoke("build-all", *CFG, *repo, env=env_for(b))
    assert run_b.returncode == 0, run_b.output[-3000:]
    tags_a, tags_b = _report(a)["tags"]["fixture"], _report(b)["tags"]["fixture"]
    assert tags_a != tags_b  # immutable tags are unique per run
    promoted = _report(b)["promotions"][0]["digest"]
    assert floating_digest(RACE_REPO) == promoted
    assert floating_digest(RACE_REPO, "fixture-py3.11") == promoted  # moved with it, in promote
    late = invoke("promote", *CFG, *repo, "--variant", "fixture", env=env_for(a))
    assert late.returncode == PromoteError.exit_code
    assert "since this run verified" in late.output and "another run promoted" in late.output
    assert floating_digest(RACE_REPO) == promoted


@pytest.mark.usefixtures("standins")
def test_a_second_run_on_one_checkout_waits_its_turn_and_a_killed_run_leaves_no_trace(
    tmp_path: Path,
) -> None:
    out = tmp_path / "shared-out"
    env = env_for(out)
    repo = ("--repository", RACE_REPO)
    before = floating_digest(RACE_REPO)
    first = invoke_in_background("build-all", *CFG, *repo, env=env)
    lines: list[str] = []
    assert first.stdout is not None
    for line in first.stdout:
        lines.append(line)
        if line.startswith("==> smoke fixture"):
            break
    else:
        pytest.fail("the first run ended before its smoke step:\n" + "".join(lines[-40:]))
    second = invoke("merge", *CFG, *repo, "--variant", "fixture", env=env)
    assert second.returncode == StateError.exit_code
    assert f"{out} is in use by another run (pid {first.pid}" in second.output
    first.send_signal(signal.SIGTERM)  # killed halfway: during its smoke step
    rest = first.communicate(timeout=300)[0]
    assert first.returncode == 130, "".join(lines) + rest
    assert "interrupted (SIGTERM)" in rest
    report = _report(out)
    assert report["result"] == "failed" and "KeyboardInterrupt: SIGTERM" in report["error"]
    assert floating_digest(RACE_REPO) == before
    again = invoke("build-all", *CFG, *repo, env=env)  # no manual cleanup
    assert again.returncode == 0, again.output[-3000:]
    assert _report(out)["result"] == "ok"


@pytest.mark.usefixtures("standins")
def test_a_broken_image_stops_build_all_before_promote(tmp_path: Path) -> None:
    """The pipeline's own smoke step: the floating tag stays, the report names the check."""
    cfg = copy_fixture(
        tmp_path / "fx",
        dockerfile_edit=('\nCMD ["python"]', '\nRUN pip uninstall -y structlog\nCMD ["python"]'),
    )
    repo = "cerebral/ai-base-smokefail"
    out = tmp_path / "out"
    run = invoke("build-all", "--config", str(cfg), "--repository", repo, env=env_for(out))
    assert run.returncode == SmokeError.exit_code
    problem = "locked package structlog==24.4.0 is not installed"
    assert problem in run.output and "promote fixture" not in run.output
    assert floating_digest(repo) is None
    report = _report(out)
    assert report["result"] == "failed" and problem in report["error"]
    assert any(problem in p for row in report["platforms"] for p in row["smoke"] or [])
    md = sorted((out / "reports").glob("build-*.md"))[-1].read_text()
    assert "- result: FAILED: smoke fixture failed" in md and problem in md


def test_an_arm64_entry_with_amd64_binaries_fails_smoke(built: Built, tmp_path: Path) -> None:
    """Config and index entry both say arm64, and the image is attested as a cell's is
    (provenance, an SBOM of its layers): verify passes; the files are amd64: the probe's
    machine tells."""
    amd = built.platform_digests["linux/amd64"]
    liar = push_attested(
        f"FROM --platform=linux/amd64 {REGISTRY}/cerebral/ai-base-fixture@{amd}\n",
        "cerebral/ai-base-fixture",
        "broken-arm64-liar",
        platform="linux/arm64",
    )
    with RegistryClient(REGISTRY) as client:  # one repository: referrers do not cross them
        fixture = client.get_manifest("cerebral/ai-base-fixture", built.index_digest)
        lying = oci.make_index([*oci.image_entries(fixture, "linux/amd64", None), *liar.entries])
        client.put_manifest("cerebral/ai-base-fixture", "broken-lying-index", lying)
    index = f"{REGISTRY}/cerebral/ai-base-fixture:broken-lying-index"
    run = invoke("verify", *CFG, "--variant", "fixture", "--ref", index, env=env_for(tmp_path))
    assert f"verified {index} (sha256:" in run.output  # the registry checks pass...
    assert run.returncode == SmokeError.exit_code  # ...the probe does not
    assert "linux/arm64: the image's binaries run as x86_64, not linux/arm64" in run.output


def _smoke_gpu(config: Path, image: str, *extra: str) -> PytestRun:
    return run_smoke_suite(config, image, "-k", "test_gpu", "--platform", "linux/amd64", *extra)


def test_the_gpu_gate_skips_with_its_reason_and_fails_when_required(
    built: Built, tmp_path: Path
) -> None:
    """A variant that promises CUDA, on a host without a GPU runtime (CI never has one)."""
    if engine.gpu_access() is not None:
        pytest.skip("this host hands GPUs to containers: the gate's no-GPU path cannot be shown")
    cfg = copy_fixture(tmp_path / "fx")
    text = (
        cfg.read_text()
        .replace(
            'heavy_roots = ["numpy"]',
            'heavy_roots = ["numpy"]\ntorch = { torch = "2.4.1", torchvision = "0.19.1", '
            'torchaudio = "2.4.1" }',
        )
        .replace("Dockerfile.ai-base.cpu", "Dockerfile.ai-base.cuda")
    )
    cfg.write_text(
        text.replace(
            '[variants.fixture.platforms."linux/amd64"]',
            '[variants.fixture.platforms."linux/amd64"]\ncuda = "12.1"',
        )
    )
    image = f"{REGISTRY}/cerebral/ai-base-fixture@{built.index_digest}"
    suite = _smoke_gpu(cfg, image)
    assert suite.returncode == 0, suite.output[-2000:]
    assert suite.ran == {"skipped": 1}
    assert f"{NO_GPU}; pass --require-gpu on a GPU runner to make this fail" in suite.output
    suite = _smoke_gpu(cfg, image, "--require-gpu")
    assert suite.returncode == 1 and suite.ran == {"failed": 1}
    assert f"--require-gpu: {NO_GPU}" in suite.output
    # the pipeline's own smoke step holds the same gate (the one promote relies on)
    verify = ("verify", "--config", str(cfg), "--variant", "fixture", "--ref", image)
    run = invoke(*verify, env=env_for(tmp_path))
    assert f"GPU checks skipped on linux/amd64: {NO_GPU}" in run.output
    run = invoke(*verify, "--require-gpu", env=env_for(tmp_path))
    assert run.returncode == SmokeError.exit_code
    assert f"linux/amd64: --require-gpu: {NO_GPU}" in run.output


def test_a_streamed_command_past_its_timeout_stops_its_whole_group(tmp_path: Path) -> None:
    """The real processes behind tests/unit/test_timeouts.py: a grandchild that holds the pipe
    (as buildx's plugin does) is stopped with the child, and the run returns in time."""
    pidfile = tmp_path / "grandchild.pid"
    started = time.monotonic()
    with pytest.raises(Timeout):
        proc.run(["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"], timeout=1, capture=False)
    assert time.monotonic() - started < 10
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5  # SIGKILL is delivered at once; the kernel may lag a little
    while _running(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(grandchild)


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie stays until whoever adopted it reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.alone  # counts the engine's containers, which other workers change
def test_a_probe_past_its_timeout_is_stopped_and_its_container_removed(built: Built) -> None:
    """The real container behind the unit test: the probe needs more than 1 s under QEMU."""
    image = f"{REGISTRY}/cerebral/ai-base-fixture@{built.platform_digests['linux/arm64']}"
    containers = _containers()
    started = time.monotonic()
    with pytest.raises(Timeout) as info:
        engine.run_probe(image, "linux/arm64", timeout=1)
    assert f"the probe in {image} (linux/arm64) did not finish within 1 s" in info.value.render()
    assert time.monotonic() - started < 60
    assert _containers() == containers  # the stopped probe was removed


def _containers() -> str:
    return subprocess.run(
        ["docker", "ps", "-aq"], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.usefixtures("built")
def test_a_tls_registry_with_a_password_end_to_end(tmp_path: Path) -> None:
    """build-all pushes, merges, verifies, smokes and promotes on an HTTPS registry with
    htpasswd, trusting a CA made here (engine: certs.d; the tool: the same file); the
    password shows up nowhere, plain or base64."""
    import secrets

    host = "localhost:5443"
    password = secrets.token_hex(16)
    (tmp_path / "tls").mkdir()
    tls = make_tls(tmp_path / "tls")
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(
        subprocess.run(
            ["htpasswd", "-Bbn", "ci", password], capture_output=True, text=True, check=True
        ).stdout
    )
    certs_d = Path("/etc/docker/certs.d") / host
    paths = Paths(tmp_path / "out", tmp_path / "cache")
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    env = env_for(tmp_path / "out", DOCKER_CONFIG=str(docker_config))
    stop_registry(host, paths)
    certs_d.mkdir(parents=True, exist_ok=True)  # the engine's trust, and the tool's
    (certs_d / "ca.crt").write_bytes((tmp_path / "tls" / "ca.crt").read_bytes())
    try:
        start_registry(host, paths, htpasswd=htpasswd, tls=tls)
        docker_login(host, "ci", password, docker_config)
        run = invoke("build-all", *CFG, "--registry", host, env=env)
        assert run.returncode == 0, run.output[-4000:]
        assert f"PUT {host}/cerebral/ai-base-fixture:fixture" in run.output
        # each cell's SBOM went up through the same client (upload, fallback tag) and verify
        # checked it and the provenance, with this registry's password among the secrets
        assert run.output.count("SBOM sha256:") >= 2 and "attached to sha256:" in run.output
        assert "<== verify fixture: ok" in run.output
        secrets_seen = (
            password,
            base64.b64encode(f"ci:{password}".encode()).decode(),
            base64.b64encode(password.encode()).decode(),
        )
        for secret in secrets_seen:
            assert secret not in run.output
        for path in (tmp_path / "out").rglob("*"):
            if path.is_file():
                text = path.read_text(errors="replace")
                assert not any(s in text for s in secrets_seen), path
    finally:
        stop_registry(host, paths)
        for f in certs_d.glob("*"):
            f.unlink()
        certs_d.rmdir()
