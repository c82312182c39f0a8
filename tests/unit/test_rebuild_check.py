"""rebuild-check's pure parts: the first differing tar entry of two layers, which layers are
the Python ones and what each is called, the pairing, and the plan (platform, builder)."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import zstandard

from aibase.errors import ConfigError, EngineError
from aibase.host import engine_build, git, proc
from aibase.host.buildx import BuildxBuilder, create_builder_argv, remove_builder_argv
from aibase.registry.refs import parse_ref
from aibase.tools.layer_diff import first_difference, tar_entries
from aibase.tools.rebuild_plan import (
    REPORT_NAME,
    Layer,
    Published,
    PublishedImage,
    compression_of,
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
    every = plan_rebuild(PUBLISHED, "", work=work, builder=None, buildkit="m/b:1", name="rb")
    assert every.platforms == ("linux/amd64", "linux/arm64")
    one = plan_rebuild(
        PUBLISHED, "linux/arm64", work=work, builder=None, buildkit="m/b:1", name="rb"
    )
    assert one.platforms == ("linux/arm64",)
    with pytest.raises(ConfigError, match="holds no linux/s390x"):
        plan_rebuild(PUBLISHED, "linux/s390x", work=work, builder=None, buildkit=None, name="rb")


def test_a_builder_of_its_own_unless_one_is_given_or_none_can_be_made() -> None:
    work = Path("/tmp/w")
    own = plan_rebuild(PUBLISHED, "", work=work, builder=None, buildkit="m/b:1", name="rb-1")
    assert own.builder == BuildxBuilder("rb-1", driver_opts={"network": "host", "image": "m/b:1"})
    assert own.commands(Path("/repo")) == [
        ("git", "-C", "/repo", "worktree", "add", "--detach", "/tmp/w/worktree", "a" * 40),
        (
            *("docker", "buildx", "create", "--name", "rb-1", "--driver", "docker-container"),
            *("--driver-opt", "network=host", "--driver-opt", "image=m/b:1", "--bootstrap"),
        ),
    ]
    given = plan_rebuild(PUBLISHED, "", work=work, builder="mine", buildkit="m/b:1", name="rb")
    assert given.builder is None and given.on_builder == "mine"
    offline = plan_rebuild(PUBLISHED, "", work=work, builder=None, buildkit=None, name="rb")
    assert offline.builder is None and offline.on_builder is None


def test_a_made_builder_is_removed_with_its_state() -> None:
    assert remove_builder_argv("rb-1") == ("docker", "buildx", "rm", "--force", "rb-1")
    assert create_builder_argv(BuildxBuilder("x"))[-1] == "--bootstrap"


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


@pytest.mark.parametrize("fails", ["", "docker buildx create"])
def test_a_made_builder_is_removed_after_an_interrupt_or_a_failed_start(
    monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    ran = _recording(monkeypatch, fails)
    expected = EngineError if fails else KeyboardInterrupt
    with pytest.raises(expected), engine_build.own_builder(BuildxBuilder("rb-1")):
        raise KeyboardInterrupt
    assert ran == ["docker buildx create --name", "docker buildx rm --force"]


@pytest.mark.parametrize("fails", ["", "git -C /repo worktree"])
def test_the_worktree_is_removed_after_an_interrupt_or_a_failed_checkout(
    monkeypatch: pytest.MonkeyPatch, fails: str, tmp_path: Path
) -> None:
    ran = _recording(monkeypatch, fails)
    expected = ConfigError if fails else KeyboardInterrupt
    with pytest.raises(expected), git.worktree(Path("/repo"), "a" * 40, tmp_path / "wt"):
        raise KeyboardInterrupt
    assert ran == ["git -C /repo worktree", "git -C /repo worktree"]
