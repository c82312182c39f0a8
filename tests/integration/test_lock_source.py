"""Where a lock's pins come from, with the real uv against two package indexes on loopback:
a "PyPI" and a "torch index" that, like download.pytorch.org, also mirrors numpy (here a
newer numpy, and the same version as a different file). Only the torch family may come
from the torch index; everything else from the default index. No engine needed."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest

from aibase.build.layers import render_cell
from aibase.build.lock_format import parse_lock
from aibase.build.locks import find_uv, write_lock
from aibase.config.loader import load_config

from .conftest import REPO, serving


def _wheel(root: Path, name: str, version: str, origin: str, requires: tuple[str, ...] = ()) -> str:
    """A minimal pure wheel in a PEP 503 index at root; returns its sha256."""
    dist = f"{name}-{version}"
    files = {
        f"{name}/__init__.py": f"ORIGIN = {origin!r}\n",
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = [
        f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(c.encode()).digest()).decode().rstrip('=')},{len(c)}"
        for p, c in files.items()
    ]
    files[f"{dist}.dist-info/RECORD"] = "\n".join([*record, f"{dist}.dist-info/RECORD,,"]) + "\n"
    filename = f"{name}-{version}-py3-none-any.whl"
    (root / "files").mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(root / "files" / filename, "w") as zf:
        for path, content in files.items():
            zf.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), content)
    page = root / "simple" / name / "index.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    with page.open("a") as f:
        f.write(f'<a href="../../files/{filename}">{filename}</a>\n')
    return hashlib.sha256((root / "files" / filename).read_bytes()).hexdigest()


@pytest.fixture
def indexes(tmp_path: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(PyPI URL, torch index URL, file hashes by `origin:name==version`), served on loopback."""
    served = tmp_path / "served"
    hashes: dict[str, str] = {}
    for origin in ("pypi", "torch"):
        hashes[f"{origin}:numpy==1.26.4"] = _wheel(served / origin, "numpy", "1.26.4", origin)
    hashes["torch:numpy==9.0.0"] = _wheel(served / "torch", "numpy", "9.0.0", "torch")
    for name, version in (("torch", "2.4.1"), ("torchvision", "0.19.1"), ("torchaudio", "2.4.1")):
        needs = ("numpy",) if name == "torch" else (f"torch=={'2.4.1'}",)
        hashes[f"pypi:{name}=={version}"] = _wheel(served / "pypi", name, version, "pypi", needs)
        local = f"{version}+cpu"
        hashes[f"torch:{name}=={local}"] = _wheel(served / "torch", name, local, "torch", needs)
    with serving(partial(SimpleHTTPRequestHandler, directory=str(served)), "") as base:
        yield f"{base}/pypi/simple", f"{base}/torch/simple", hashes


def test_the_torch_index_serves_the_torch_family_and_nothing_else(
    indexes: tuple[str, str, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pypi, torch_index, hashes = indexes
    monkeypatch.setenv("UV_DEFAULT_INDEX", pypi)  # "PyPI": the default index uv resolves from
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    (tmp_path / "common.in").write_text("numpy>=1.20\n")
    config = tmp_path / "images.toml"
    config.write_text(
        f"""
[project]
repository = "cerebral/ai-base-locktest"
registry = "localhost:5000"
platforms = ["linux/amd64"]
source = "https://example.invalid/ai-base"

[variants.cpu]
dockerfile = "{REPO}/docker/Dockerfile.ai-base.cpu"
base = "python:3.11-slim"
python = "3.11"
size_budget_mb = 100
requirements = ["common.in"]
torch = {{ torch = "2.4.1", torchvision = "0.19.1", torchaudio = "2.4.1" }}
lock_dir = "locks"

[variants.cpu.platforms."linux/amd64"]
torch_index = "{torch_index}"
"""
    )
    variant = load_config(config, env={}).variant("cpu")
    lock = write_lock(variant, variant.platform("linux/amd64"), uv=find_uv()).read_text()

    pins = {name: pkg.version for name, pkg in parse_lock(lock).items()}
    # numpy from PyPI: not the torch index's 9.0.0, not its 1.26.4 (a different file)
    assert pins["numpy"] == "1.26.4"
    assert hashes["pypi:numpy==1.26.4"] in lock
    assert hashes["torch:numpy==1.26.4"] not in lock
    # the torch family from the torch index, never PyPI's build of the same version
    for name, version in (("torch", "2.4.1"), ("torchvision", "0.19.1"), ("torchaudio", "2.4.1")):
        assert pins[name] == f"{version}+cpu"
        assert hashes[f"torch:{name}=={version}+cpu"] in lock
    # the lock reads as a plain resolve: no resolver notes, no generated project
    assert "# from" not in lock and "ai-base-lock-input" not in lock
    assert lock.count(f"--extra-index-url {torch_index}\n") == 1

    # and the image's install: only the torch family's groups may ask the torch index
    template = (REPO / "docker" / "Dockerfile.ai-base.cpu").read_text()
    files = render_cell(template, lock, variant, "linux/amd64")
    asking = sorted(k for k, text in files.items() if torch_index in text)
    assert asking == ["groups/torch.txt", "groups/torchaudio.txt", "groups/torchvision.txt"]
