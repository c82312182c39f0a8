"""rebuild-check's pure parts: the first differing tar entry of two layers, which layers are
the Python ones and what each is called, the pairing, and the plan (platform, builder); the
private engine's command line and its life (stopped and removed on failure and interrupt)."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import signal
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import zstandard

from aibase.errors import ConfigError, EngineError, NotReproduced
from aibase.host import engine_private, git, proc
from aibase.host.buildx import BuildxBuild, buildx_argv
from aibase.host.engine_private import (
    PrivateEngine,
    bridge_argv,
    dockerd_argv,
    mounts_under,
    plan_engine,
)
from aibase.registry.refs import parse_ref
from aibase.tools import rebuild_check
from aibase.tools.layer_diff import first_difference, tar_entries
from aibase.tools.rebuild_plan import (
    REPORT_NAME,
    Layer,
    Published,
    PublishedImage,
    compression_of,
    image_layers,
    pair_layers,
    plan_rebuild,
    python_layers,
)

GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def _layer(*files: tuple[str, bytes, int], mode: int = 0o644) -> bytes:
    """A gzip layer blob of (name, content, mtime) files, in that order."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content, mtime in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(content), mtime, mode
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


A = ("opt/venv/lib/a.py", b"a = 1\n", 0)
B = ("opt/venv/lib/b.py", b"b = 2\n", 0)


def test_the_same_files_are_no_difference() -> None:
    assert first_difference(tar_entries(_layer(A, B)), tar_entries(_layer(A, B))) == ""


def test_a_later_clock_names_the_file_and_both_times() -> None:
    late = (B[0], B[1], 1_764_781_200)
    diff = first_difference(tar_entries(_layer(A, B)), tar_entries(_layer(A, late)))
    assert diff == "opt/venv/lib/b.py: mtime 1970-01-01T00:00:00Z -> 2025-12-03T17:00:00Z"


def test_a_zstd_layer_is_read_like_a_gzip_one() -> None:
    """--compression zstd ships zstd layers: rebuild-check compares those too."""
    late = (B[0], B[1], 1_764_781_200)
    zstd = zstandard.ZstdCompressor().compress(gzip.decompress(_layer(A, late)))
    assert tar_entries(zstd) == tar_entries(_layer(A, late))
    assert first_difference(tar_entries(_layer(A, B)), tar_entries(zstd)).startswith(B[0])


def test_changed_content_of_the_same_size_is_named() -> None:
    changed = (A[0], b"a = 9\n", 0)
    assert first_difference(tar_entries(_layer(A)), tar_entries(_layer(changed))) == (
        "opt/venv/lib/a.py: content"
    )


def test_size_mode_and_order_each_show() -> None:
    longer = (A[0], b"a = 10\n", 0)
    assert first_difference(tar_entries(_layer(A)), tar_entries(_layer(longer))) == (
        "opt/venv/lib/a.py: size 6 -> 7, content"
    )
    assert first_difference(tar_entries(_layer(A)), tar_entries(_layer(A, mode=0o755))) == (
        "opt/venv/lib/a.py: mode 644 -> 755"
    )
    assert first_difference(tar_entries(_layer(A, B)), tar_entries(_layer(B, A))) == (
        "opt/venv/lib/a.py: in its place the rebuild has opt/venv/lib/b.py"
    )


def test_a_file_missing_or_added_is_named() -> None:
    assert first_difference(tar_entries(_layer(A, B)), tar_entries(_layer(A))) == (
        "opt/venv/lib/b.py: missing from the rebuild"
    )
    assert first_difference(tar_entries(_layer(A)), tar_entries(_layer(A, B))) == (
        "opt/venv/lib/b.py: only in the rebuild"
    )


HISTORY = (
    Layer("RUN /bin/sh -c apt-get install ...", "sha256:os", GZIP),
    Layer("COPY /layer/ / # buildkit", "sha256:g1", GZIP),
    Layer("COPY /layer/ / # buildkit", "sha256:g2", GZIP),
    Layer("COPY /report/ / # buildkit", "sha256:rep", GZIP),
)


def test_the_python_layers_are_named_by_group_in_order_and_the_report_last() -> None:
    named = python_layers(HISTORY, ["numpy", "long-tail-0"])
    assert [(n, x.digest) for n, x in named] == [
        ("numpy", "sha256:g1"),
        ("long-tail-0", "sha256:g2"),
        (REPORT_NAME, "sha256:rep"),
    ]


def test_pairing_says_which_layer_differs_and_one_the_rebuild_lacks() -> None:
    old = python_layers(HISTORY, ["numpy", "long-tail-0"])
    rebuilt = (HISTORY[0], HISTORY[1], Layer("COPY /layer/ / # buildkit", "sha256:new", GZIP))
    results = pair_layers("linux/amd64", old, python_layers(rebuilt, ["numpy", "long-tail-0"]))
    assert [(r.name, r.reproduced) for r in results] == [
        ("numpy", True),
        ("long-tail-0", False),
        (REPORT_NAME, False),
    ]
    assert results[2].rebuilt == "" and results[0].line().endswith("reproduced")


def test_the_rebuild_uses_the_published_compression() -> None:
    assert compression_of(HISTORY) == "gzip"
    assert compression_of((Layer("x", "sha256:z", GZIP.replace("gzip", "zstd")),)) == "zstd"


PUBLISHED = Published(
    parse_ref("localhost:5000/cerebral/ai-base:cpu"),
    "a" * 40,
    "cpu",
    (
        PublishedImage("linux/amd64", "sha256:amd", HISTORY),
        PublishedImage("linux/arm64", "sha256:arm", HISTORY),
    ),
)


def test_the_plan_covers_every_platform_of_the_index_or_the_one_asked() -> None:
    work = Path("/tmp/w")
    assert plan_rebuild(PUBLISHED, "", work=work, builder=None).platforms == (
        "linux/amd64",
        "linux/arm64",
    )
    one = plan_rebuild(PUBLISHED, "linux/arm64", work=work, builder=None)
    assert one.platforms == ("linux/arm64",)
    with pytest.raises(ConfigError, match="holds no linux/s390x"):
        plan_rebuild(PUBLISHED, "linux/s390x", work=work, builder=None)


def test_the_private_engine_unless_a_builder_is_given() -> None:
    """The private engine has no bridge (RUN needs --network host) and an empty cache (no
    stage needs marking uncached); a given builder keeps its network, its stages uncached."""
    work = Path("/tmp/w")
    own = plan_rebuild(PUBLISHED, "", work=work, builder=None)
    assert (own.builder, own.network, own.uncached(["numpy"])) == (None, "host", ())
    assert own.worktree_argv(Path("/repo")) == (
        *("git", "-C", "/repo", "worktree", "add", "--detach", "/tmp/w/worktree", "a" * 40),
    )
    given = plan_rebuild(PUBLISHED, "", work=work, builder="mine")
    assert (given.builder, given.network) == ("mine", None)
    assert given.uncached(["numpy"]) == ("group-numpy", "layers-check", "image")


def test_the_build_on_the_private_engine_runs_on_the_host_network() -> None:
    argv = buildx_argv(BuildxBuild(".", ("linux/amd64",), network="host"))
    assert argv == (
        *("docker", "buildx", "build", "--platform", "linux/amd64", "--network", "host"),
        *("--progress", "plain", "."),
    )
    assert "--network" not in buildx_argv(BuildxBuild(".", ("linux/amd64",)))


ENGINE = PrivateEngine(Path("/tmp/aibase-engine-1"))


def test_the_private_engine_keeps_everything_under_its_root() -> None:
    assert dockerd_argv(ENGINE) == (
        *("dockerd", "--config-file", "/tmp/aibase-engine-1/daemon.json"),
        *("--data-root", "/tmp/aibase-engine-1/data"),
        *("--exec-root", "/tmp/aibase-engine-1/exec"),
        *("--pidfile", "/tmp/aibase-engine-1/dockerd.pid"),
        *("--host", "unix:///tmp/aibase-engine-1/docker.sock"),
        *("--bridge", "aibase-1", "--iptables=false", "--ip6tables=false"),
        "--ip-forward=false",
    )
    # never --bridge none: that deletes the host's docker0, the shared engine's bridge
    assert bridge_argv(ENGINE, "add") == ("ip", "link", "add", "aibase-1", "type", "bridge")
    assert bridge_argv(ENGINE, "delete") == ("ip", "link", "delete", "aibase-1")
    assert len(plan_engine(Path("/tmp")).bridge) <= 15  # IFNAMSIZ
    # buildx's state (its current builder) goes there too, not into ~/.docker
    assert ENGINE.env == {
        "DOCKER_HOST": "unix:///tmp/aibase-engine-1/docker.sock",
        "BUILDX_CONFIG": "/tmp/aibase-engine-1/buildx",
    }
    fresh = plan_engine(Path("/tmp"))
    assert fresh.root.name.startswith("aibase-engine-") and fresh != plan_engine(Path("/tmp"))


def test_a_missing_dockerd_says_how_to_get_it_or_what_else_to_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(EngineError, match="dockerd is not on PATH") as caught:
        engine_private.dockerd_version()
    assert "scripts/setup-host-debian.sh" in caught.value.fix
    assert "--builder" in caught.value.fix


def _interrupt_on(engine: PrivateEngine) -> None:
    assert (engine.root / "daemon.json").exists()  # it ran, in its own root
    raise KeyboardInterrupt


class _Dockerd:
    """A started dockerd stood in for: it exits on the first signal it gets."""

    pid = 4242

    def __init__(self, signals: list[tuple[int, int]]) -> None:
        self.signals = signals

    def poll(self) -> int | None:
        return 0 if self.signals else None


def _engine_world(
    monkeypatch: pytest.MonkeyPatch, ran: list[str], *, answers: bool
) -> list[tuple[int, int]]:
    """proc.start/run and the kills stood in for; returns the signals sent, by pid. ran: the
    commands' first three words (the engine, when it does not answer, fails `docker version`)."""
    signals: list[tuple[int, int]] = []

    def run(argv: Sequence[str], **_: Any) -> proc.Result:
        ran.append(" ".join(argv[:3]))
        ok = answers or argv[0] != "docker"
        return proc.Result(tuple(argv), 0 if ok else 1, "", "")

    def start(*_a: Any, **_k: Any) -> _Dockerd:
        ran.append("dockerd")
        return _Dockerd(signals)

    monkeypatch.setattr(proc, "start", start)
    monkeypatch.setattr(proc, "run", run)
    monkeypatch.setattr(os, "kill", lambda pid, sig: signals.append((pid, sig)))
    monkeypatch.setattr(os, "killpg", lambda pid, sig: signals.append((pid, sig)))
    monkeypatch.setattr(engine_private, "START_S", 0.1)
    return signals


def test_the_private_engine_is_stopped_and_removed_after_an_interrupt(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ran: list[str] = []
    signals = _engine_world(monkeypatch, ran, answers=True)
    engine = plan_engine(tmp_path)
    with pytest.raises(KeyboardInterrupt), engine_private.private_engine(engine) as running:
        _interrupt_on(running)
    assert signals == [(4242, signal.SIGTERM)]
    assert not engine.root.exists()
    assert [ran[0], ran[1], ran[-1]] == ["ip link add", "dockerd", "ip link delete"]


def test_a_private_engine_that_does_not_start_is_stopped_and_removed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ran: list[str] = []
    signals = _engine_world(monkeypatch, ran, answers=False)
    engine = plan_engine(tmp_path)
    with (
        pytest.raises(EngineError, match="did not answer"),
        engine_private.private_engine(engine),
    ):
        pytest.fail("the engine never answered")
    assert signals == [(4242, signal.SIGTERM)]
    assert not engine.root.exists()
    assert [ran[0], ran[1], ran[-1]] == ["ip link add", "dockerd", "ip link delete"]


def test_what_a_killed_engine_left_mounted_is_unmounted_deepest_first() -> None:
    mountinfo = (
        "36 35 98:0 / /tmp/aibase-engine-1/data rw - ext4 /dev/vda rw\n"
        "37 36 0:1 / /tmp/aibase-engine-1/data/overlay/x/merged rw - overlay overlay rw\n"
        "38 35 0:2 / /tmp/aibase-engine-10 rw - tmpfs tmpfs rw\n"
    )
    assert mounts_under(ENGINE.root, mountinfo) == [
        "/tmp/aibase-engine-1/data/overlay/x/merged",
        "/tmp/aibase-engine-1/data",
    ]


def test_a_build_on_another_engine_is_echoed_with_where_it_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}

    def run(argv: list[str], **kwargs: Any) -> Any:
        seen.update(kwargs)
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(subprocess, "run", run)
    proc.run(["docker", "version"], timeout=1, extra_env=ENGINE.env)
    echoed = capsys.readouterr().err
    assert "$ DOCKER_HOST=unix:///tmp/aibase-engine-1/docker.sock BUILDX_CONFIG=" in echoed
    assert seen["env"]["DOCKER_HOST"] == ENGINE.host and "PATH" in seen["env"]


def _recording(monkeypatch: pytest.MonkeyPatch, fails: str = "") -> list[str]:
    """proc.run stood in for: each command's first words; the one starting with `fails` fails."""
    ran: list[str] = []

    def run(argv: Sequence[str], **_: Any) -> proc.Result:
        words = " ".join(argv[:4])
        ran.append(words)
        failed = bool(fails) and words.startswith(fails)
        return proc.Result(tuple(argv), 1 if failed else 0, "", "boom" if failed else "")

    monkeypatch.setattr(proc, "run", run)
    return ran


@pytest.mark.parametrize("fails", ["", "git -C /repo worktree"])
def test_the_worktree_is_removed_after_an_interrupt_or_a_failed_checkout(
    monkeypatch: pytest.MonkeyPatch, fails: str, tmp_path: Path
) -> None:
    ran = _recording(monkeypatch, fails)
    expected = ConfigError if fails else KeyboardInterrupt
    with pytest.raises(expected), git.worktree(Path("/repo"), "a" * 40, tmp_path / "wt"):
        raise KeyboardInterrupt
    assert ran == ["git -C /repo worktree", "git -C /repo worktree"]


def test_the_first_line_says_the_build_runs_on_a_private_empty_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/sbin/{name}")
    out = "Docker version 26.1.5+dfsg1, build 411e817\n"
    monkeypatch.setattr(proc, "run", lambda argv, **_k: proc.Result(tuple(argv), 0, out, ""))
    assert rebuild_check._builder_said(ENGINE, None) == (
        "a private, empty Docker Engine (dockerd 26.1.5+dfsg1, data root "
        "/tmp/aibase-engine-1/data), removed afterwards"
    )
    assert rebuild_check._builder_said(None, "mine") == (
        "mine (--builder), the Python stages run again uncached"
    )


def test_an_image_whose_history_and_layers_disagree_is_not_compared() -> None:
    """Zipped loosely, a history one step short named each layer by its neighbour's step:
    group layers taken for other layers, or none found at all (review finding)."""
    steps = [{"created_by": "COPY /layer/ /"}, {"created_by": "COPY /report/ /"}]
    layers = [{"digest": "sha256:" + c * 64} for c in "ab"]
    assert len(image_layers({"layers": layers}, {"history": steps})) == 2
    with pytest.raises(NotReproduced, match="history names 1 layers, its manifest holds 2"):
        image_layers({"layers": layers}, {"history": steps[:1]})
