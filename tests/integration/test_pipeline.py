"""The main job end to end on the fixture variant, and every way it must fail closed."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from aibase.build.lock_format import body_digest, split_blocks, split_header
from aibase.config.loader import load
from aibase.config.paths import Paths
from aibase.errors import (
    BuildError,
    ConfigError,
    LockError,
    PromoteError,
    RegistryError,
    RegistryUnreachable,
    VerifyError,
)
from aibase.registry.client import RegistryClient
from aibase.registry.oci import Manifest
from aibase.state import MergeRecord, SmokeRecord, VariantState, VerifyRecord, write_variant
from aibase.tools.base_pins import changed_lines

from .conftest import (
    FIXTURE_CONFIG,
    IT_REPO,
    REGISTRY,
    Built,
    copy_fixture,
    docker_login,
    env_for,
    floating_digest,
    invoke,
    make_index,
    registry_snapshot,
)

pytestmark = pytest.mark.engine
CFG = ("--config", str(FIXTURE_CONFIG))


@pytest.mark.alone  # asserts on the whole registry or the fixture's floating tags
def test_build_all_promotes_a_verified_two_platform_index(built: Built) -> None:
    assert floating_digest() == built.index_digest
    with RegistryClient(REGISTRY) as client:
        index = client.get_manifest(IT_REPO, "fixture")
    platforms = sorted(
        f"{m['platform']['os']}/{m['platform']['architecture']}"
        for m in index.json["manifests"]
        if "vnd.docker.reference.type" not in (m.get("annotations") or {})
    )
    assert platforms == ["linux/amd64", "linux/arm64"]
    # a container of each platform runs, from the floating tag
    for platform, machine in (("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")):
        out = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--pull",
                "always",
                "--platform",
                platform,
                f"{REGISTRY}/{IT_REPO}:fixture",
                "python",
                "-c",
                "import platform, sys; print(platform.machine(), sys.prefix)",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.split() == [machine, "/opt/venv"]
    # step lines with durations, and a report to paste into a PR
    assert "<== verify fixture: ok" in built.run.output
    assert "<== promote fixture: ok" in built.run.output
    md = next((built.out / "reports").glob("build-*.md")).read_text()
    for digest in built.platform_digests.values():
        assert digest in md
    report = json.loads(next((built.out / "reports").glob("build-*.json")).read_text())
    assert report["result"] == "ok"
    assert report["promotions"][0]["digest"] == built.index_digest
    assert ["repository", IT_REPO, "flag"] in report["settings"]
    assert "settings (flag > env > file > default):" in built.run.output


def test_the_report_names_each_layer_the_stand_in_and_no_file_it_did_not_write(
    built: Built,
) -> None:
    md = next((built.out / "reports").glob("build-*.md")).read_text()
    written = {p.name for p in built.out.rglob("*")}
    for name in re.findall(r"[\w.-]+\.cdx\.json", md):
        assert name in written, f"the report names {name}, which was never written"
    assert "None" not in md
    assert (
        "- **STAND-IN base** under fixture: Debian 12 from bases-bootstrap, NOT python:3.11-slim"
        in md
    )
    charts = md.split("```mermaid")[1:]
    assert len(charts) == 2
    for chart in charts:
        body = chart.split("```")[0]
        assert "(STAND-IN base): compressed MB per layer" in body
        axis_line = re.search(r"x-axis \[(.*)\]", body)
        assert axis_line, body
        axis = axis_line.group(1)
        names = re.findall(r'"([^"]+)"', axis)
        assert names[0] == "stand-in base" and "RUN apt-get install" in names, names
        assert "group numpy" in names, names
        bar_line = re.search(r"bar \[(.*)\]", body)
        assert bar_line, body
        bars = bar_line.group(1).split(", ")
        assert len(bars) == len(names) and "0.0" not in bars
        # the empty ones are named under the chart, not dropped silently
        assert "under 0.05 MB, not charted: WORKDIR /app" in chart


@pytest.mark.alone  # asserts on the whole registry or the fixture's floating tags
@pytest.mark.usefixtures("built")
def test_dry_run_changes_nothing(out_dir: Path) -> None:
    before = registry_snapshot()
    run = invoke("build-all", *CFG, "--repository", IT_REPO, "--dry-run", env=env_for(out_dir))
    assert run.returncode == 0
    assert registry_snapshot() == before
    commands = [ln for ln in run.output.splitlines() if ln.startswith("[dry-run] $ docker")]
    assert [c.split()[4] for c in commands] == ["build", "build"]
    assert "--platform linux/amd64" in commands[0] and "--platform linux/arm64" in commands[1]
    # the merge names each cell by the immutable tag its build pushes under
    cell_tags = [c.split("--output type=image,name=")[1].split(",")[0] for c in commands]
    merge = next(ln for ln in run.output.splitlines() if ln.startswith("[dry-run] would PUT"))
    assert f"linux/amd64 {cell_tags[0]}, linux/arm64 {cell_tags[1]}" in merge
    assert not list(out_dir.rglob("*"))  # not even a lock file


def _write_state(
    out_dir: Path,
    index: str,
    verified: dict[str, str] | None = None,
    smoke: dict[str, str] | None = None,
) -> None:
    """What `merge`/`verify` would have recorded in this checkout, for this config (tests
    forge it to try to fool promote)."""
    flags = {"config": str(FIXTURE_CONFIG), "repository": IT_REPO}
    _, cfg = load(flags, env=env_for(out_dir))
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    merged = MergeRecord(REGISTRY, IT_REPO, head, cfg.config_digest, index, ("forged",), {})
    before = {"fixture": floating_digest(), "fixture-py3.11": floating_digest(tag="fixture-py3.11")}
    state = VariantState(
        "fixture",
        REGISTRY,
        IT_REPO,
        merged,
        VerifyRecord(index, verified, before) if verified is not None else None,
        {p: SmokeRecord(p, d, ()) for p, d in (smoke or {}).items()},
    )
    write_variant(Paths(out_dir, Path()).variant_state(IT_REPO, "fixture"), state)


def _arm64_only_index(built: Built, tag: str) -> str:
    arm = built.platform_digests["linux/arm64"]
    make_index(f"{REGISTRY}/{IT_REPO}:{tag}", f"{REGISTRY}/{IT_REPO}@{arm}")
    with RegistryClient(REGISTRY) as client:
        return client.get_manifest(IT_REPO, tag).digest


@pytest.mark.alone  # asserts on the whole registry or the fixture's floating tags
def test_the_old_incident_arm64_only_index_is_never_promoted(built: Built, out_dir: Path) -> None:
    before = floating_digest()
    digest = _arm64_only_index(built, "incident-arm64-only")
    run = invoke(
        "verify",
        *CFG,
        "--variant",
        "fixture",
        "--ref",
        f"{REGISTRY}/{IT_REPO}:incident-arm64-only",
        env=env_for(out_dir),
    )
    assert run.returncode == VerifyError.exit_code
    assert "required platform linux/amd64 is missing from the index" in run.output
    # even a state file that claims verify + smoke passed does not get it promoted:
    # promote re-reads the index from the registry first
    claimed = {"linux/amd64": "sha256:" + "1" * 64, "linux/arm64": "sha256:" + "2" * 64}
    _write_state(out_dir, digest, verified=claimed, smoke=claimed)
    run = invoke(
        "promote", *CFG, "--repository", IT_REPO, "--variant", "fixture", env=env_for(out_dir)
    )
    assert run.returncode == VerifyError.exit_code
    assert "linux/amd64 is missing" in run.output
    assert floating_digest() == before


@pytest.mark.alone  # asserts on the whole registry or the fixture's floating tags
def test_promote_refuses_an_unverified_index(built: Built, out_dir: Path) -> None:
    before = floating_digest()
    _write_state(out_dir, built.index_digest)
    run = invoke(
        "promote", *CFG, "--repository", IT_REPO, "--variant", "fixture", env=env_for(out_dir)
    )
    assert run.returncode == PromoteError.exit_code
    assert "was never verified" in run.output
    assert floating_digest() == before


def test_entry_whose_config_says_another_architecture_fails_verify(
    built: Built, out_dir: Path
) -> None:
    with RegistryClient(REGISTRY) as client:
        index = client.get_manifest(IT_REPO, built.index_digest)
        doc = index.json
        for entry in doc["manifests"]:  # swap the platform claims of the two images
            p = entry.get("platform", {})
            if p.get("architecture") in ("amd64", "arm64"):
                p["architecture"] = "arm64" if p["architecture"] == "amd64" else "amd64"
        body = json.dumps(doc).encode()
        forged = Manifest("", index.media_type, body)
        client.put_manifest(IT_REPO, "forged-arch", forged)
    run = invoke(
        "verify",
        *CFG,
        "--variant",
        "fixture",
        "--ref",
        f"{REGISTRY}/{IT_REPO}:forged-arch",
        env=env_for(out_dir),
    )
    assert run.returncode == VerifyError.exit_code
    assert "the index entry says linux/amd64 but the image config says linux/arm64" in run.output


def test_merge_refuses_without_every_platform(built: Built, out_dir: Path) -> None:
    cells = out_dir / "cells"
    cells.mkdir()
    src = next(built.out.glob("cells/fixture-linux-arm64.json"))
    (cells / src.name).write_text(src.read_text())
    run = invoke(
        "merge", *CFG, "--repository", IT_REPO, "--variant", "fixture", env=env_for(out_dir)
    )
    assert run.returncode == BuildError.exit_code
    assert "no cell result for linux/amd64" in run.output


@pytest.mark.alone  # asserts on the whole registry or the fixture's floating tags
@pytest.mark.usefixtures("built")
def test_a_failing_cell_stops_everything(tmp_path: Path, out_dir: Path) -> None:
    """A tampered hash in one platform's lock: refused before any build; and when the lock's
    own digest is forged to match, the install fails: nothing is merged or promoted."""
    cfg = copy_fixture(tmp_path / "fx")
    lock = tmp_path / "fx" / "locks" / "fixture-linux-amd64.txt"
    text = lock.read_text()
    block = split_blocks(text)["structlog"]
    tampered = re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, block)
    lock.write_text(text.replace(block, tampered))
    before = registry_snapshot()
    run = invoke("build-all", "--config", str(cfg), "--repository", IT_REPO, env=env_for(out_dir))
    assert run.returncode == LockError.exit_code
    assert "refused" in run.output and "edited: its body does not match" in run.output
    assert "docker buildx build" not in run.output
    head, body = split_header(lock.read_text())
    lock.write_text(
        re.sub(r"body-sha256: [0-9a-f]{64}", f"body-sha256: {body_digest(body)}", head) + body
    )
    run = invoke("build-all", "--config", str(cfg), "--repository", IT_REPO, env=env_for(out_dir))
    assert run.returncode == BuildError.exit_code
    assert "build of cell fixture/linux/amd64 failed" in run.output
    assert "Hash mismatch for `structlog==24.4.0`" in run.output  # uv, in its group stage
    assert "merge fixture" not in run.output
    assert registry_snapshot()[IT_REPO] == before[IT_REPO]


@pytest.mark.usefixtures("built")
def test_registry_down_is_a_clear_error_and_changes_nothing(out_dir: Path) -> None:
    run = invoke("build-all", *CFG, "--registry", "127.0.0.1:5009", env=env_for(out_dir))
    assert run.returncode == RegistryUnreachable.exit_code
    assert "error: registry 127.0.0.1:5009: does not answer /v2/; nothing was built\n" in run.output
    assert "Traceback" not in run.output
    # the push itself failing (registry gone after preflight) names the cell
    from aibase.build.cell import build_cell
    from aibase.build.plan import Cell
    from aibase.build.run_context import open_run
    from aibase.config.loader import load

    flags = {
        "config": str(FIXTURE_CONFIG),
        "registry": "127.0.0.1:5009",
        "base_mirror": "localhost:5000/mirror",
        "out": str(out_dir),
    }
    settings, cfg = load(flags, env={})
    with open_run(settings, cfg) as ctx, pytest.raises(RegistryUnreachable) as info:
        build_cell(ctx, cfg.variant("fixture"), Cell("fixture", "linux/amd64"))
    message = info.value.render()
    assert "registry 127.0.0.1:5009 stopped answering (connection refused)" in message
    assert "cell fixture/linux/amd64" in message
    # a registry named by a flag is never started for the user: nothing answers there now
    from aibase.host.local_registry import answers

    assert not answers("127.0.0.1:5009")


def test_bases_update_pins_each_base_in_one_line(
    standins: str, tmp_path: Path, out_dir: Path
) -> None:
    """Resolve the base and installer tags' digests on the mirror and pin them: one line
    each; the mirror holds stand-ins, so only with --allow-stand-in, and each line says so;
    the pinned config still plans builds (and the installer) through the mirror."""
    cfg = copy_fixture(tmp_path / "fx")
    before = cfg.read_text()
    update = ("bases-update", "--config", str(cfg), "--base-mirror", standins)
    refused = invoke(*update, env=env_for(out_dir))
    assert refused.returncode == ConfigError.exit_code, refused.output
    assert f"{standins}/library/python:3.11-slim is a stand-in for python:3.11-slim" in (
        refused.output
    )
    assert cfg.read_text() == before
    run = invoke(*update, "--allow-stand-in", env=env_for(out_dir))
    assert run.returncode == 0, run.output
    after = cfg.read_text()
    with RegistryClient(REGISTRY) as client:
        digest = client.get_manifest("mirror/library/python", "3.11-slim").digest
    note = "  # STAND-IN: Debian 12 from bases-bootstrap, NOT python:3.11-slim"
    assert changed_lines(before, after) == [
        ('base = "python:3.11-slim"', f'base = "python:3.11-slim@{digest}"{note}'),
        ("", f'installer = "python:3.11-slim@{digest}"{note}'),
    ]
    again = invoke(*update, "--allow-stand-in", env=env_for(out_dir))
    assert "base pins are up to date" in again.output
    dry = invoke(
        "build",
        "--config",
        str(cfg),
        "--variant",
        "fixture",
        "--platform",
        "linux/amd64",
        "--push",
        "--dry-run",
        env=env_for(out_dir),
    )
    assert f"BASE_IMAGE={standins}/library/python:3.11-slim@{digest}" in dry.output
    assert f"INSTALLER_IMAGE={standins}/library/python:3.11-slim@{digest}" in dry.output


@pytest.mark.usefixtures("built")
def test_authenticated_registry_uses_the_credential_store(
    tmp_path: Path, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """htpasswd registry on 127.0.0.1:5001: build-all pushes, verifies, smokes and promotes
    with the credential `docker login` stored; the password appears in no output or file."""
    import secrets

    import httpx

    from aibase.host import local_registry

    host = "127.0.0.1:5001"
    password = secrets.token_hex(16)
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(
        subprocess.run(
            ["htpasswd", "-Bbn", "ci", password], capture_output=True, text=True, check=True
        ).stdout
    )
    paths = Paths(out_dir, tmp_path / "cache")
    local_registry.stop_registry(host, paths)
    local_registry.start_registry(host, paths, htpasswd=htpasswd)
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    env = env_for(out_dir, DOCKER_CONFIG=str(docker_config))
    try:
        assert httpx.get(f"http://{host}/v2/").status_code == 401
        # without credentials: a clear error naming the fix
        denied = invoke(
            "verify", *CFG, "--variant", "fixture", "--ref", f"{host}/{IT_REPO}:fixture", env=env
        )
        assert denied.returncode == RegistryError.exit_code
        assert (
            "unauthorized (HTTP 401)" in denied.output and f"docker login {host}" in denied.output
        )
        docker_login(host, "ci", password, docker_config)
        run = invoke("build-all", *CFG, "--registry", host, env=env)
        assert run.returncode == 0, run.output[-3000:]
        assert password not in run.output
        for path in out_dir.rglob("*"):
            if path.is_file():
                assert password not in path.read_text(errors="replace"), path
        from aibase.registry.credentials import load_credentials

        monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))
        with RegistryClient(host, credentials=load_credentials(host)) as client:
            index = client.get_manifest(IT_REPO, "fixture")
        assert index.is_index
    finally:
        local_registry.stop_registry(host, paths)


def test_missing_base_in_the_mirror_is_named_before_any_build(registry: str, out_dir: Path) -> None:
    run = invoke(
        "build-all",
        *CFG,
        "--repository",
        IT_REPO,
        env={"AIBASE_OUT": str(out_dir), "AIBASE_BASE_MIRROR": f"{registry}/no-such-mirror"},
    )
    assert run.returncode == BuildError.exit_code
    assert (
        "base localhost:5000/no-such-mirror/library/python:3.11-slim: is not in the mirror "
        "localhost:5000/no-such-mirror (for python:3.11-slim)"
    ) in run.output
    assert "invoke bases-bootstrap" in run.output
    assert "docker buildx build" not in run.output


@pytest.mark.alone  # asserts on the whole registry or the fixture's floating tags
@pytest.mark.usefixtures("registry")
def test_a_dry_run_runs_every_preflight_and_shows_what_would_fail(
    tmp_path: Path, out_dir: Path
) -> None:
    """First contact: a lock missing and a base nobody can resolve are both named, with the
    offline path that does run; the commands are still shown; nothing changes."""
    cfg = copy_fixture(tmp_path / "fx")
    cfg.write_text(
        cfg.read_text().replace(
            'base = "python:3.11-slim"', 'base = "127.0.0.1:5999/library/python:3.11-slim"'
        )
    )
    (tmp_path / "fx" / "locks" / "fixture-linux-arm64.txt").unlink()
    before = registry_snapshot()
    run = invoke("build-all", "--config", str(cfg), "--dry-run", env={"AIBASE_OUT": str(out_dir)})
    assert run.returncode == LockError.exit_code
    assert "preflight [FAIL] lock fixture/linux/arm64\n" in run.output
    assert "preflight [FAIL] base 127.0.0.1:5999/library/python:3.11-slim\n" in run.output
    assert "  - lock fixture/linux/arm64: missing" in run.output  # the why: once, in the error
    assert "  - base 127.0.0.1:5999/library/python:3.11-slim: cannot be resolved" in run.output
    assert "preflight [ok  ] engine" in run.output
    assert run.output.count("./ai bases-bootstrap --config tests/fixtures/images.toml") == 1
    assert run.output.count("[dry-run] $ docker buildx build") == 1  # the cell that has a lock
    assert "cell fixture/linux/arm64 cannot be planned: its lock is missing" in run.output
    assert registry_snapshot() == before
    assert not list(out_dir.rglob("*"))
