"""Tests of the smoke tests: deliberately broken images must fail them, naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import (
    FIXTURE_CONFIG,
    IT_REPO,
    REGISTRY,
    Built,
    PytestRun,
    push_image,
    run_smoke_suite,
)

pytestmark = pytest.mark.engine
BROKEN_REPO = f"{REGISTRY}/cerebral/ai-base-broken"

BREAKAGES = {
    # a locked package missing
    "missing-package": (
        "RUN pip uninstall -y structlog",
        "locked package structlog==24.4.0 is not installed",
    ),
    # a CUDA library in a cpu image (the real nvidia wheel, from PyPI)
    "cuda-in-cpu": (
        "RUN --mount=type=secret,id=ca_bundle,target=/run/secrets/ca.pem "
        "PIP_CERT=/run/secrets/ca.pem pip install --no-deps nvidia-cuda-runtime-cu12==12.1.105",
        "CUDA libraries in a non-CUDA image",
    ),
    # the venv's python swapped for another minor (Debian 13's python3.13)
    "wrong-python": (
        "RUN echo 'deb http://deb.debian.org/debian trixie main' "
        "> /etc/apt/sources.list.d/trixie.list "
        "&& apt-get update && apt-get install -y --no-install-recommends python3.13 "
        "&& ln -sf /usr/bin/python3.13 /opt/venv/bin/python",
        "the config promises 3.11",
    ),
}


def _build_broken(built: Built, name: str, instruction: str, tmp_path: Path) -> str:
    digest = built.platform_digests["linux/amd64"]
    dockerfile = f"FROM {REGISTRY}/{IT_REPO}@{digest}\n{instruction}\n"
    return push_image(dockerfile, f"{BROKEN_REPO}:{name}", tmp_path)


def _smoke(ref: str) -> PytestRun:
    """The promises test against one amd64 image."""
    return run_smoke_suite(
        FIXTURE_CONFIG, ref, "-k", "keeps_every_promise", "--platform", "linux/amd64"
    )


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_smoke_fails_on_a_broken_image_naming_the_problem(
    built: Built, tmp_path: Path, name: str
) -> None:
    instruction, expected = BREAKAGES[name]
    run = _smoke(_build_broken(built, name, instruction, tmp_path))
    assert run.returncode == 1, run.output[-2000:]
    assert run.ran == {"failed": 1}
    assert expected in run.output


def test_smoke_passes_on_the_good_image(built: Built) -> None:
    """The control: the same smoke selection passes on the image the broken ones derive from."""
    run = _smoke(f"{REGISTRY}/{IT_REPO}@{built.index_digest}")
    assert run.returncode == 0, run.output[-2000:]
    assert run.ran == {"passed": 1}


@pytest.mark.usefixtures("registry")
def test_smoke_before_anything_was_built_says_so_in_one_line() -> None:
    run = run_smoke_suite(FIXTURE_CONFIG, f"{REGISTRY}/cerebral/ai-base-nothing:here")
    out = run.output
    assert run.returncode == 4, out
    assert "nothing to smoke-test: localhost:5000/cerebral/ai-base-nothing:here" in out
    assert "pass --image REF" in out
    assert "Traceback" not in out and "ERROR at setup" not in out
