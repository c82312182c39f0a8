from __future__ import annotations

from pathlib import Path

import pytest

from aibase.config.loader import load_config
from aibase.config.model import Config
from aibase.errors import ConfigError
from aibase.registry.refs import parse_ref

from .conftest import REPO, VALID, WriteConfig

NO_ENV: dict[str, str] = {}


def load(path: Path, env: dict[str, str] | None = None, **flags: str) -> Config:
    return load_config(path, flags, env=NO_ENV if env is None else env)


def error_of(path: Path, **ov: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, ov, env=NO_ENV)
    return info.value.render()


def test_valid_config_is_frozen_and_complete(write_config: WriteConfig) -> None:
    cfg = load(write_config())
    assert cfg.registry == "localhost:5000"
    assert cfg.platforms == ("linux/amd64", "linux/arm64")
    cpu, cuda = cfg.variant("cpu"), cfg.variant("cuda")
    assert cpu.platform("linux/amd64").torch_index == "https://download.pytorch.org/whl/cpu"
    assert cpu.platform("linux/arm64").torch_index is None
    assert cuda.platform("linux/amd64").cuda == "12.1"
    assert cuda.platform("linux/arm64").cuda is None
    assert cpu.heavy_roots == ("torch", "torchvision", "torchaudio")
    assert cpu.lock_file("linux/arm64").name == "cpu-linux-arm64.txt"
    with pytest.raises(AttributeError):
        cfg.registry = "elsewhere"  # type: ignore[misc]
    assert cfg.required_platforms == cfg.platforms


def test_repository_config_loads_with_documented_defaults() -> None:
    cfg = load(REPO / "images.toml")
    assert cfg.repository == "cerebral/ai-base"
    assert cfg.registry == "localhost:5000"
    assert cfg.variant("cpu").base == "python:3.11-slim"
    assert cfg.variant("cuda").base.startswith("nvidia/cuda:12.4.1-runtime-ubuntu22.04")
    for name in ("cpu", "cuda"):
        v = cfg.variant(name)
        assert v.python == "3.11"
        assert v.torch is not None
        assert (v.torch.torch, v.torch.torchvision, v.torch.torchaudio) == (
            "2.4.1",
            "0.19.1",
            "2.4.1",
        )
    assert cfg.variant("cuda").platform("linux/amd64").cuda == "12.1"
    assert cfg.variant("cuda").platform("linux/arm64").cuda is None
    assert not cfg.variant("cpu").cuda_capable


def test_missing_file(tmp_path: Path) -> None:
    msg = error_of(tmp_path / "nope.toml")
    assert "nope.toml: file not found" in msg and "--config" in msg


def test_malformed_toml(write_config: WriteConfig) -> None:
    msg = error_of(write_config("[project\nrepository = 1"))
    assert "not valid TOML" in msg and "images.toml" in msg


def test_unknown_key_names_path_and_suggests(write_config: WriteConfig) -> None:
    msg = error_of(write_config(VALID.replace('python = "3.11"', 'pyton = "3.11"', 1)))
    assert "variants.cpu.pyton: unknown key (did you mean 'python'?)" in msg


def test_bad_platform_string(write_config: WriteConfig) -> None:
    msg = error_of(write_config(VALID.replace('"linux/amd64", "linux/arm64"]', '"linux/amd46"]')))
    assert "project.platforms[0]" in msg
    assert "'linux/amd46' is not a platform" in msg and "did you mean 'linux/amd64'" in msg


def test_bad_platform_key_in_variant(write_config: WriteConfig) -> None:
    msg = error_of(
        write_config(
            VALID.replace(
                '[variants.cuda.platforms."linux/arm64"]', '[variants.cuda.platforms."linux/arm46"]'
            )
        )
    )
    assert 'variants.cuda.platforms["linux/arm46"]' in msg


def test_missing_field(write_config: WriteConfig) -> None:
    msg = error_of(write_config(VALID.replace("size_budget_mb = 2500\n", "", 1)))
    assert "variants.cpu.size_budget_mb: missing required field" in msg


def test_missing_required_platform_in_variant(write_config: WriteConfig) -> None:
    text = VALID.replace('[variants.cuda.platforms."linux/arm64"]\n', "")
    msg = error_of(write_config(text))
    assert "variants.cuda.platforms" in msg and "linux/arm64" in msg


def test_cuda_expectation_on_cpu_variant(write_config: WriteConfig) -> None:
    text = VALID.replace(
        'torch_index = "https://download.pytorch.org/whl/cpu"',
        'torch_index = "https://download.pytorch.org/whl/cpu"\ncuda = "12.1"',
    )
    msg = error_of(write_config(text))
    assert 'variants.cpu.platforms["linux/amd64"].cuda' in msg
    assert "cannot promise CUDA" in msg


def test_cuda_without_torch(write_config: WriteConfig) -> None:
    text = VALID.replace(
        'requirements = ["common.in"]\ntorch = { torch = "2.4.1", torchvision = "0.19.1", '
        'torchaudio = "2.4.1" }\n\n[variants.cuda.platforms',
        'requirements = ["common.in"]\n\n[variants.cuda.platforms',
    )
    msg = error_of(write_config(text))
    assert "needs a [torch] table" in msg


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        ("size_budget_mb = 2500", "size_budget_mb = -1", "size_budget_mb: -1 is not a positive"),
        ('python = "3.11"', 'python = "3"', "python: '3' is not a Python minor"),
        (
            'torch = "2.4.1", torchvision',
            'torch = "latest", torchvision',
            "'latest' is not a release",
        ),
        ('registry = "localhost:5000"', 'registry = "http://x"', "is not a registry host"),
        ('repository = "cerebral/ai-base"', 'repository = "Cerebral/AI"', "not a repository path"),
        (
            'base = "python:3.11-slim"',
            'base = "python:3.11-slim@sha256:12"',
            "not an image reference",
        ),
        ('torch_index = "https://', 'torch_index = "ftp://', "is not an https URL"),
        ('torch_index = "https://', 'torch_index = "http://', "http only on loopback"),
        ('torch_index = "https://', 'torch_index = "file:///', "is not an https URL"),
        # a newline would add option lines to the lock (pip obeys them)
        (
            'torch_index = "https://download.pytorch.org/whl/cpu"',
            'torch_index = "https://download.pytorch.org/whl/cpu\\n--trusted-host evil"',
            "no whitespace",
        ),
        ('platforms = ["linux/amd64", "linux/arm64"]', "platforms = []", "non-empty list"),
        (
            'platforms = ["linux/amd64", "linux/arm64"]',
            'platforms = ["linux/amd64", "linux/amd64"]',
            "listed twice",
        ),
    ],
)
def test_field_validation(write_config: WriteConfig, old: str, new: str, expect: str) -> None:
    assert old in VALID
    assert expect in error_of(write_config(VALID.replace(old, new, 1)))


def test_unknown_variant(write_config: WriteConfig) -> None:
    cfg = load(write_config())
    with pytest.raises(ConfigError) as info:
        cfg.select("cpu,gpu")
    assert "unknown variant 'gpu'" in info.value.render()
    assert "cpu, cuda" in info.value.render()


def test_select_all_and_some(write_config: WriteConfig) -> None:
    cfg = load(write_config())
    assert [v.name for v in cfg.select("")] == ["cpu", "cuda"]
    assert [v.name for v in cfg.select("cuda")] == ["cuda"]


def test_precedence_flag_over_env_over_file(write_config: WriteConfig) -> None:
    path = write_config()
    assert load(path).registry == "localhost:5000"
    env = {"AIBASE_REGISTRY": "127.0.0.1:5001", "AIBASE_PLATFORMS": "linux/arm64"}
    from_env = load(path, env=env)
    assert from_env.registry == "127.0.0.1:5001"
    assert from_env.platforms == ("linux/arm64",)
    from_flag = load(path, env=env, registry="127.0.0.1:5002")
    assert from_flag.registry == "127.0.0.1:5002"
    assert from_flag.platforms == ("linux/arm64",)


def test_empty_flag_falls_through_to_the_environment(write_config: WriteConfig) -> None:
    cfg = load(write_config(), env={"AIBASE_REGISTRY": "localhost:6000"}, registry="")
    assert cfg.registry == "localhost:6000"
    assert cfg.base_mirror is None


def test_bad_platform_override_names_the_flag_or_variable(write_config: WriteConfig) -> None:
    msg = error_of(write_config(), platforms="linux/amd64,linux/arm46")
    assert msg.startswith("--platforms: 'linux/arm46' is not a platform")
    with pytest.raises(ConfigError) as info:
        load(write_config(), env={"AIBASE_PLATFORMS": "linux/arm46"})
    assert info.value.render().startswith("AIBASE_PLATFORMS: 'linux/arm46'")


def test_override_platform_the_variant_lacks(write_config: WriteConfig) -> None:
    msg = error_of(write_config(), platforms="linux/ppc64le")
    assert "does not define" in msg


def test_config_path_from_env(write_config: WriteConfig) -> None:
    path = write_config()
    cfg = load_config(None, env={"AIBASE_CONFIG": str(path)})
    assert cfg.path == path


def test_config_is_found_from_a_subdirectory(
    write_config: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config()
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert load_config(None, env={}).path == path


@pytest.mark.parametrize(
    ("ref", "mirror", "expect"),
    [
        ("python:3.11-slim", None, "python:3.11-slim"),
        (
            "python:3.11-slim",
            "localhost:5000/mirror",
            "localhost:5000/mirror/library/python:3.11-slim",
        ),
        (
            "nvidia/cuda:12.4.1-runtime-ubuntu22.04",
            "localhost:5000/m/",
            "localhost:5000/m/nvidia/cuda:12.4.1-runtime-ubuntu22.04",
        ),
        ("ghcr.io/org/img:1", "localhost:5000/mirror", "localhost:5000/mirror/ghcr.io/org/img:1"),
    ],
)
def test_mirror_reference(ref: str, mirror: str | None, expect: str) -> None:
    assert (str(parse_ref(ref).mirrored(mirror)) if mirror else ref) == expect


def test_base_mirror_override_redirects_every_base(write_config: WriteConfig) -> None:
    cfg = load(write_config(), env={"AIBASE_BASE_MIRROR": "localhost:5000/mirror"})
    assert cfg.base_for(cfg.variant("cpu")) == "localhost:5000/mirror/library/python:3.11-slim"
    assert cfg.base_for(cfg.variant("cuda")).startswith("localhost:5000/mirror/nvidia/cuda:")


def test_a_loopback_index_may_be_plain_http(write_config: WriteConfig) -> None:
    text = VALID.replace(
        'torch_index = "https://download.pytorch.org/whl/cpu"',
        'torch_index = "http://127.0.0.1:8080/simple"',
    )
    cfg = load(write_config(text))
    assert cfg.variant("cpu").platform("linux/amd64").torch_index == "http://127.0.0.1:8080/simple"
