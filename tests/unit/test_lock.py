from __future__ import annotations

from pathlib import Path

import pytest

from aibase.build.lock_format import parse_lock, render_project, strip_resolver_notes, wrong_sources
from aibase.build.locks import (
    check_lock,
    inputs_digest,
    render_input,
    render_lock,
    uv_compile_argv,
)
from aibase.config.loader import load_config
from aibase.config.model import PlatformSpec, VariantConfig

from .conftest import REPO, WriteConfig

UV_OUT = """\
filelock==3.16.1 \\
    --hash=sha256:aa
    # via torch, triton
jinja2==3.1.4 \\
    --hash=sha256:bb
    # via torch
markupsafe==2.1.5 \\
    --hash=sha256:cc
    # via jinja2
fastapi==0.115.0 \\
    --hash=sha256:dd
starlette==0.38.6 \\
    --hash=sha256:ee
    # via fastapi
torch==2.4.1 \\
    --hash=sha256:ff
    # via torchvision
torchvision==0.19.1 \\
    --hash=sha256:11
triton==3.0.0 ; platform_machine == 'x86_64' \\
    --hash=sha256:22
    # via torch
"""


def test_parse_lock_reads_names_and_versions() -> None:
    pkgs = parse_lock(UV_OUT)
    assert pkgs["jinja2"].version == "3.1.4"
    assert pkgs["triton"].version == "3.0.0"
    assert set(pkgs) == {
        "filelock",
        "jinja2",
        "markupsafe",
        "fastapi",
        "starlette",
        "torch",
        "torchvision",
        "triton",
    }


def test_inputs_digest_changes_with_any_input(write_config: WriteConfig, tmp_path: Path) -> None:
    cfg = load_config(write_config(), env={})
    v = cfg.variant("cpu")
    a = inputs_digest(v, v.platform("linux/amd64"))
    assert a != inputs_digest(v, v.platform("linux/arm64"))
    (tmp_path / "common.in").write_text("fastapi==0.115.1\n")
    assert a != inputs_digest(v, v.platform("linux/amd64"))
    assert "torch==2.4.1" in render_input(v)


def test_uv_argv_never_adds_the_torch_index_for_every_package(write_config: WriteConfig) -> None:
    cfg = load_config(write_config(), env={})
    v = cfg.variant("cpu")
    argv = uv_compile_argv("uv", v, v.platform("linux/amd64"), "/tmp/x/pyproject.toml")
    assert argv[3] == "/tmp/x/pyproject.toml"
    assert argv[argv.index("--python-platform") + 1] == "x86_64-manylinux_2_28"
    # an extra index would serve whatever it mirrors (numpy, pillow, ...): the project's
    # explicit index (render_project) is the only way the torch index is used
    assert not any("index" in a and a != "--emit-index-annotation" for a in argv)
    assert "--generate-hashes" in argv and "--emit-index-annotation" in argv
    # wheels only: a pin the layer groups cannot install natively fails at lock time
    assert argv[argv.index("--only-binary") + 1] == ":all:"
    assert uv_compile_argv("uv", v, v.platform("linux/arm64"))[3] == "-"


def test_the_lock_project_lets_the_torch_index_serve_the_torch_family_only() -> None:
    import tomllib

    text = render_project(
        ["torch==2.4.1", 'uvicorn[standard]==0.30.6 ; python_version >= "3.8"'],
        "https://download.pytorch.org/whl/cpu",
        ("torch", "torchvision"),
    )
    doc = tomllib.loads(text)
    assert (
        doc["project"]["dependencies"][1] == 'uvicorn[standard]==0.30.6 ; python_version >= "3.8"'
    )
    assert doc["tool"]["uv"]["index"] == [
        {"name": "torch", "url": "https://download.pytorch.org/whl/cpu", "explicit": True}
    ]
    assert doc["tool"]["uv"]["sources"] == {
        "torch": {"index": "torch"},
        "torchvision": {"index": "torch"},
    }


ANNOTATED = """\
numpy==1.26.4 \\
    --hash=sha256:aa
    # via torch, ai-base-lock-input (/tmp/aibase-lock-x/pyproject.toml)
    # from https://pypi.org/simple
torch==2.4.1+cpu \\
    --hash=sha256:bb
    # via ai-base-lock-input (/tmp/aibase-lock-x/pyproject.toml)
    # from https://download.pytorch.org/whl/cpu
"""


def test_pins_from_the_wrong_index_are_named() -> None:
    index = "https://download.pytorch.org/whl/cpu/"
    assert wrong_sources(ANNOTATED, index, ("torch",)) == []
    moved = ANNOTATED.replace("# from https://pypi.org/simple", f"# from {index}")
    assert wrong_sources(moved, index, ("torch",)) == [f"numpy from {index}"]
    assert wrong_sources(ANNOTATED, index, ("torch", "numpy")) == [
        "numpy from https://pypi.org/simple"
    ]


def test_a_lock_reads_the_same_however_uv_was_fed() -> None:
    assert strip_resolver_notes(ANNOTATED) == (
        "numpy==1.26.4 \\\n    --hash=sha256:aa\n    # via torch\n"
        "torch==2.4.1+cpu \\\n    --hash=sha256:bb\n"
    )


def test_check_lock_states(write_config: WriteConfig, tmp_path: Path) -> None:
    cfg = load_config(write_config(), env={})
    v = cfg.variant("cuda")
    spec = v.platform("linux/arm64")
    assert check_lock(v, spec).state == "missing"
    full = render_lock(UV_OUT, v, spec, inputs_digest(v, spec))
    v.lock_file("linux/arm64").parent.mkdir(parents=True)
    v.lock_file("linux/arm64").write_text(full)
    assert check_lock(v, spec).state == "ok"
    (tmp_path / "common.in").write_text("fastapi==0.115.1\n")  # an input changed
    assert check_lock(v, spec).state == "stale"


@pytest.mark.parametrize("config", ["images.toml", "tests/fixtures/images.toml"])
def test_committed_locks_match_their_inputs(config: str) -> None:
    """Every committed lock is current; a missing one must be a documented gap."""
    cfg = load_config(REPO / config, env={})
    states = {
        (v.name, p): check_lock(v, v.platform(p)).state
        for v in cfg.variants.values()
        for p in cfg.platforms
    }
    # cpu/linux/amd64 needs the PyTorch CPU index, unreachable where these locks were made
    allowed_missing = {("cpu", "linux/amd64")}
    for key, state in states.items():
        if key in allowed_missing and state == "missing":
            continue
        assert state == "ok", f"{key}: {state}"


def _written(
    write_config: WriteConfig, variant: str = "cpu", platform: str = "linux/amd64"
) -> tuple[VariantConfig, PlatformSpec, str]:
    cfg = load_config(write_config(), env={})
    v = cfg.variant(variant)
    spec = v.platform(platform)
    full = render_lock(UV_OUT, v, spec, inputs_digest(v, spec))
    v.lock_file(platform).parent.mkdir(parents=True, exist_ok=True)
    v.lock_file(platform).write_text(full)
    assert check_lock(v, spec).state == "ok"
    return v, spec, full


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        ("--hash=sha256:dd", "--hash=sha256:d0", "edited"),  # a swapped hash
        ("fastapi==0.115.0", "fastapi==0.110.0", "edited"),  # a changed pin
    ],
)
def test_check_covers_the_whole_body(
    write_config: WriteConfig, old: str, new: str, why: str
) -> None:
    v, spec, full = _written(write_config)
    v.lock_file(spec.platform).write_text(full.replace(old, new))
    status = check_lock(v, spec)
    assert status.state == "refused" and why in status.why


@pytest.mark.parametrize(
    "option",
    [
        "--index-url http://pypi.evil.example/simple",
        "--trusted-host pypi.evil.example",
        "--extra-index-url https://another.example/simple",
    ],
)
def test_an_option_line_other_than_the_configured_index_is_refused(
    write_config: WriteConfig, option: str
) -> None:
    """Even when the body digest is recomputed to match: pip would obey the option."""
    from aibase.build.lock_format import body_digest, split_header

    v, spec, full = _written(write_config)
    head, body = split_header(full)
    body = f"{option}\n{body}"
    head = head.replace(head.split("# body-sha256: ")[1][:64], body_digest(body))
    v.lock_file(spec.platform).write_text(head + body)
    status = check_lock(v, spec)
    assert status.state == "refused" and option in status.why
    # the configured index itself is fine: the amd64 cpu lock carries it
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in full
