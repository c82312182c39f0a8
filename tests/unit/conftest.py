from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

VALID = """
[project]
repository = "cerebral/ai-base"
registry = "localhost:5000"
platforms = ["linux/amd64", "linux/arm64"]
source = "https://example.invalid/ai-base"

[variants.cpu]
dockerfile = "docker/Dockerfile.ai-base.cpu"
base = "python:3.11-slim"
python = "3.11"
size_budget_mb = 2500
requirements = ["common.in"]
torch = { torch = "2.4.1", torchvision = "0.19.1", torchaudio = "2.4.1" }

[variants.cpu.platforms."linux/amd64"]
torch_index = "https://download.pytorch.org/whl/cpu"
[variants.cpu.platforms."linux/arm64"]

[variants.cuda]
dockerfile = "docker/Dockerfile.ai-base.cuda"
base = "nvidia/cuda:12.4.1-runtime-ubuntu22.04"
python = "3.11"
size_budget_mb = 6000
requirements = ["common.in"]
torch = { torch = "2.4.1", torchvision = "0.19.1", torchaudio = "2.4.1" }

[variants.cuda.platforms."linux/amd64"]
cuda = "12.1"
[variants.cuda.platforms."linux/arm64"]
"""


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a config (VALID, optionally edited) into tmp_path and return its path."""

    def _write(text: str = VALID) -> Path:
        (tmp_path / "common.in").write_text("fastapi==0.115.0\n")
        path = tmp_path / "images.toml"
        path.write_text(text)
        return path

    return _write
