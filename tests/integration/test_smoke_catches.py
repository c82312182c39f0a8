"""Tests of the smoke tests: deliberately broken images must fail them, naming the problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import FIXTURE_CONFIG, IT_REPO, REGISTRY, REPO, Built, push_image

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


def _smoke(ref: str) -> tuple[int, str]:
    """The real smoke suite (what `nox -s smoke-*` runs), against one amd64 image."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/smoke", "-p", "no:cacheprovider",
         "-k", "keeps_every_promise", "--config", str(FIXTURE_CONFIG), "--variant", "fixture",
         "--image", ref, "--platform", "linux/amd64"],
        cwd=REPO, capture_output=True, text=True, check=False, env=os.environ.copy(),
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    print(out[-3000:])
    return proc.returncode, out


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_smoke_fails_on_a_broken_image_naming_the_problem(built: Built, tmp_path: Path, name: str):
    instruction, expected = BREAKAGES[name]
    code, out = _smoke(_build_broken(built, name, instruction, tmp_path))
    assert code == 1, out[-2000:]
    assert "1 failed" in out
    assert expected in out


def test_smoke_passes_on_the_good_image(built: Built):
    """The control: the same smoke selection passes on the image the broken ones derive from."""
    code, out = _smoke(f"{REGISTRY}/{IT_REPO}@{built.index_digest}")
    assert code == 0, out[-2000:]
    assert "1 passed" in out


def test_smoke_before_anything_was_built_says_so_in_one_line(registry: str):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/smoke", "-p", "no:cacheprovider", "--config",
         str(FIXTURE_CONFIG), "--variant", "fixture", "--image",
         f"{REGISTRY}/cerebral/ai-base-nothing:here"],
        cwd=REPO, capture_output=True, text=True, check=False, env=os.environ.copy(),
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out
    assert "nothing to smoke-test: localhost:5000/cerebral/ai-base-nothing:here" in out
    assert "pass --image REF" in out
    assert "Traceback" not in out and "ERROR at setup" not in out
