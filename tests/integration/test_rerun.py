"""Running a step again, as a CI operator does after a failure or by "Re-run all jobs": a
promote that already happened is a no-op success that writes nothing (the registry's own
access log counts the PUTs) and retries only a notice that failed; a registry that stops
answering during the push is named, and a plain rerun resumes. Each test runs a registry of
its own on loopback and stops it: the shared one on localhost:5000 is never touched."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aibase.config.paths import Paths
from aibase.errors import NotifyError, RegistryUnreachable
from aibase.host.local_registry import LocalRegistry, start_registry, stop_registry
from aibase.registry.client import RegistryClient

from .conftest import (
    FIXTURE_CONFIG,
    Notice,
    env_for,
    invoke,
    invoke_in_background,
    notice_receiver,
    variant_state,
)

pytestmark = pytest.mark.engine
CFG = ("--config", str(FIXTURE_CONFIG))


def _own_registry(host: str, tmp_path: Path) -> tuple[LocalRegistry, Paths]:
    paths = Paths(tmp_path / "registry-out", tmp_path / "registry-cache")
    registry = start_registry(host, paths)
    if registry.kind != "process":  # someone else's on that port: never stop it
        pytest.fail(f"{host} is already served by another registry ({registry.kind})")
    return registry, paths


def _puts(registry: LocalRegistry) -> list[str]:
    """Every PUT the registry served, from its access log (distribution writes one line per
    request to stdout, which the tool keeps in registry.log)."""
    text = (registry.state_dir / "registry.log").read_text(errors="replace")
    return re.findall(r'"PUT (\S+) HTTP', text)


def _serves(host: str, repo: str, tag: str) -> str | None:
    with RegistryClient(host) as client:
        return client.head_manifest(repo, tag)


@pytest.mark.usefixtures("standins")
def test_promote_run_again_writes_nothing_and_retries_only_a_failed_notice(tmp_path: Path) -> None:
    host, repo = "127.0.0.1:5023", "cerebral/ai-base-promote22"
    registry, paths = _own_registry(host, tmp_path)
    args = (*CFG, "--registry", host, "--repository", repo)
    out = tmp_path / "out"
    try:
        first = invoke(
            "build-all", *args, env=env_for(out, AIBASE_NOTIFY_URL="http://127.0.0.1:9/")
        )
        assert first.returncode == NotifyError.exit_code, first.output[-3000:]
        merged = variant_state(out, repo).merged
        assert merged is not None
        index = merged.index_digest
        assert _serves(host, repo, "fixture") == index == _serves(host, repo, "fixture-py3.11")
        promoted = [f"/v2/{repo}/manifests/fixture-py3.11", f"/v2/{repo}/manifests/fixture"]
        assert [p for p in _puts(registry) if p in promoted] == promoted  # the log sees PUTs
        received: list[Notice] = []
        with notice_receiver(received) as url:
            env = env_for(out, AIBASE_NOTIFY_URL=url)
            before = _puts(registry)
            again = invoke("promote", *args, "--variant", "fixture", env=env)
            assert again.returncode == 0, again.output[-3000:]
            assert f"{host}/{repo}:fixture already serves {index}" in again.output
            assert _puts(registry) == before  # nothing written
            ((payload, _),) = received  # the notice that had failed, sent now
            assert payload["client_payload"]["digest"] == index
            assert variant_state(out, repo).notified == index
            third = invoke("promote", *args, "--variant", "fixture", env=env)
            assert third.returncode == 0, third.output[-3000:]
            assert len(received) == 1 and "not sent again" in third.output
            assert _puts(registry) == before
        assert _serves(host, repo, "fixture") == index == _serves(host, repo, "fixture-py3.11")
    finally:
        stop_registry(host, paths)


@pytest.mark.usefixtures("standins")
def test_a_registry_that_stops_during_the_push_is_named_and_a_rerun_resumes(tmp_path: Path) -> None:
    """The registry answers the preflight, then is stopped as the first cell's build starts:
    buildx's push is refused. The message names the registry and says a rerun resumes;
    after it is back, the same command promotes both platforms."""
    host, repo = "127.0.0.1:5022", "cerebral/ai-base-regdown22"
    _, paths = _own_registry(host, tmp_path)
    args = (*CFG, "--registry", host, "--repository", repo)
    env = env_for(tmp_path / "out")
    try:
        run = invoke_in_background("build-all", *args, env=env)
        lines: list[str] = []
        assert run.stdout is not None
        for line in run.stdout:
            lines.append(line)
            if line.startswith("==> build fixture/linux/amd64"):
                assert stop_registry(host, paths)
                break
        else:
            pytest.fail("build-all ended before its first build:\n" + "".join(lines[-40:]))
        output = "".join(lines) + run.communicate(timeout=1800)[0]
        print(output[-6000:])
        assert run.returncode == RegistryUnreachable.exit_code, output[-3000:]
        assert (
            f"error: registry {host} stopped answering (connection refused) while cell " in output
        )
        assert "fixture/linux/amd64 was built and pushed" in output
        assert "then rerun the same command: the build is cached and the push resumes" in output
        assert "read the failing step in the build log above" not in output
        start_registry(host, paths)
        assert _serves(host, repo, "fixture") is None  # nothing was promoted
        again = invoke("build-all", *args, env=env)
        assert again.returncode == 0, again.output[-3000:]
        state = variant_state(tmp_path / "out", repo)
        assert state.verified is not None and set(state.verified.platforms) == {
            "linux/amd64",
            "linux/arm64",
        }
        assert _serves(host, repo, "fixture") == state.verified.index_digest
    finally:
        stop_registry(host, paths)
