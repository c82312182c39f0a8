"""`./ai rebuild-check REF` on the fixture (one platform: CI stays fast): the session's index
rebuilt from its revision reproduces every Python layer; an index whose group layer was
tampered with after the build is named, with the file that differs. Both run on a private,
empty Docker Engine, and neither leaves a worktree, that engine, its root or its bridge
behind, nor a current builder in ~/.docker/buildx, nor touches the shared engine's docker0."""

from __future__ import annotations

import gzip
import io
import json
import secrets
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from aibase.build.layers import plan_groups
from aibase.build.lock_format import parse_lock
from aibase.config.loader import load_config
from aibase.errors import NotReproduced
from aibase.registry.client import RegistryClient
from aibase.registry.oci import Manifest, entry_platform

from .conftest import FIXTURE_CONFIG, IT_REPO, REGISTRY, REPO, Built, env_for, invoke

pytestmark = pytest.mark.engine

PLATFORM = "linux/amd64"


def _leftovers() -> tuple[str, list[str], list[str], str, str, list[str]]:
    """This checkout's worktrees, the private engines running and their roots, buildx's
    current builder in ~/.docker, the shared engine's docker0 (its interface index: a
    private dockerd under --bridge none deleted it) and the private engines' bridges: none
    may change."""
    worktrees = subprocess.run(
        ["git", "-C", str(REPO), "worktree", "list"], capture_output=True, text=True, check=True
    ).stdout
    engines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # it ended meanwhile
        if argv[0].endswith(b"dockerd") and b"aibase-engine-" in b" ".join(argv):
            engines.append(b" ".join(argv).decode())
    roots = sorted(str(p) for p in Path(tempfile.gettempdir()).glob("aibase-engine-*"))
    current = Path.home() / ".docker" / "buildx" / "current"
    docker0 = Path("/sys/class/net/docker0/ifindex")
    bridges = sorted(p.name for p in Path("/sys/class/net").glob("aibase-*"))
    return (
        worktrees,
        engines,
        roots,
        current.read_text() if current.exists() else "",
        docker0.read_text() if docker0.exists() else "",
        bridges,
    )


def _rebuild_check(built: Built, ref: str) -> tuple[int, str]:
    before = _leftovers()
    run = invoke(
        "rebuild-check",
        ref,
        "--config",
        str(FIXTURE_CONFIG),
        "--platform",
        PLATFORM,
        env=env_for(built.out),
    )
    assert _leftovers() == before, "a worktree, an engine, its root, bridge or builder was left"
    # the check's first line: where it builds
    said = run.output.split("==> rebuild-check\n", 1)[1].splitlines()[0]
    assert said.startswith("builder: a private, empty Docker Engine (dockerd "), said
    root = said.split("data root ")[1].split(")")[0].removesuffix("/data")
    assert root.startswith(tempfile.gettempdir()) and not Path(root).exists(), said
    assert f"DOCKER_HOST=unix://{root}/docker.sock BUILDX_CONFIG=" in run.output
    return run.returncode, run.output


def _groups() -> list[str]:
    variant = load_config(FIXTURE_CONFIG, env={}).variant("fixture")
    lock = variant.lock_file(PLATFORM).read_text()
    return [g.name for g in plan_groups(tuple(parse_lock(lock)), variant)]


def test_rebuild_check_reproduces_the_fixtures_python_layers(built: Built) -> None:
    rc, out = _rebuild_check(built, f"{REGISTRY}/{IT_REPO}@{built.index_digest}")
    lines = [line for line in out.splitlines() if line.startswith(PLATFORM)]
    assert rc == 0, out[-3000:]
    # every group installed again (uncached), not its layer taken from the engine's cache
    assert out.count(" Installed ") >= len(_groups()), "the group installs did not run again"
    assert [line.split()[1] for line in lines] == [*_groups(), "layers-check"]
    assert all(line.endswith(" reproduced") for line in lines), lines
    assert f"{len(lines)} of {len(lines)} Python layers reproduced" in out


def _tampered_layer(blob: bytes) -> tuple[bytes, str]:
    """The layer with its first non-empty file one byte longer: (gzip blob, that file)."""
    raw = io.BytesIO()
    changed = ""
    with (
        tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as old,
        tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as new,
    ):
        for member in old.getmembers():
            content = old.extractfile(member) if member.isreg() else None
            data = content.read() if content else None
            if data and not changed:
                data, changed = data + b"#", member.name
                member.size = len(data)
            new.addfile(member, io.BytesIO(data) if data is not None else None)
    return gzip.compress(raw.getvalue(), mtime=0), changed


def _push_tampered(built: Built) -> tuple[str, str, str]:
    """An index like the session's whose first group layer on PLATFORM was changed after
    the build: (its ref, the group, the file changed)."""
    with RegistryClient(REGISTRY) as client:
        index = client.get_manifest(IT_REPO, built.index_digest)
        entries = index.json["manifests"]
        entry = next(e for e in entries if entry_platform(e) == PLATFORM)
        image = client.get_manifest(IT_REPO, entry["digest"])
        config = json.loads(client.get_blob(IT_REPO, image.json["config"]["digest"]))
        steps = [h.get("created_by", "") for h in config["history"] if not h.get("empty_layer")]
        at = next(i for i, s in enumerate(steps) if s.startswith("COPY /layer/ "))
        layers = image.json["layers"]
        blob, changed = _tampered_layer(client.get_blob(IT_REPO, layers[at]["digest"], 1 << 32))
        layers[at] = layers[at] | {"digest": client.upload_blob(IT_REPO, blob), "size": len(blob)}
        body = json.dumps(image.json | {"layers": layers}).encode()
        tag = f"rebuild-tampered-{secrets.token_hex(3)}"
        digest = client.put_manifest(IT_REPO, tag, Manifest("", image.media_type, body))
        entry.update(digest=digest, size=len(body))
        index_body = json.dumps(index.json | {"manifests": entries}).encode()
        client.put_manifest(IT_REPO, tag, Manifest("", index.media_type, index_body))
    return f"{REGISTRY}/{IT_REPO}:{tag}", _groups()[0], changed


def test_rebuild_check_names_the_layer_and_the_file_that_differ(built: Built) -> None:
    ref, group, changed = _push_tampered(built)
    rc, out = _rebuild_check(built, ref)
    assert rc == NotReproduced.exit_code, out[-3000:]
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith(PLATFORM)}
    assert f"differs: {changed}: size " in lines[group], lines
    assert lines[group].split("differs: ")[1].startswith(f"{changed}: size "), lines[group]
    assert ", content" in lines[group]
    assert all(line.endswith(" reproduced") for g, line in lines.items() if g != group), lines
