"""Every setting follows one precedence, flag > env > file > default, and the block every run
prints names the right source. A setting added without a sample here fails the first test."""

from __future__ import annotations

from pathlib import Path

import pytest

from aibase.config.loader import load
from aibase.config.settings import SETTINGS
from aibase.errors import ConfigError

from .conftest import WriteConfig

REV_A, REV_B = "a" * 40, "b" * 40


def samples(tmp: Path) -> dict[str, tuple[object, str]]:
    """name -> (a flag value, a different environment value)."""
    for f in ("ca-a.pem", "ca-b.pem", "url-a", "url-b"):
        (tmp / f).write_text("x\n")
    return {
        "config": (str(tmp / "other" / "images.toml"), str(tmp / "images.toml")),
        "registry": ("127.0.0.1:5002", "127.0.0.1:5001"),
        "repository": ("flag/repo", "env/repo"),
        "platforms": ("linux/arm64", "linux/amd64"),
        "base_mirror": ("localhost:5000/flag", "localhost:5000/env"),
        "registry_ca": (str(tmp / "ca-a.pem"), str(tmp / "ca-b.pem")),
        "auth_hosts": ("auth.example.org", "token.example.org"),
        "out": (str(tmp / "out-flag"), str(tmp / "out-env")),
        "cache": (str(tmp / "cache-flag"), str(tmp / "cache-env")),
        "revision": (REV_A, REV_B),
        "ca_bundle": (str(tmp / "ca-a.pem"), str(tmp / "ca-b.pem")),
        "pip_index_url_file": (str(tmp / "url-a"), str(tmp / "url-b")),
        "compression": ("gzip", "zstd"),
        "build_cache": ("registry", str(tmp / "cache")),
        "debug": (True, "1"),
        "builder": ("cluster", "other"),
        "jobs": ("2", "3"),
        "runners": ("linux/amd64=big-x64", "linux/amd64=big-x64,linux/arm64=big-arm"),
        "gpu_runner": ("gpu-a100", "none"),
        "notify_url": ("http://127.0.0.1:1/hook", "http://127.0.0.1:2/hook"),
        "notify_token": ("t0k3n-flag", "t0k3n-env"),
        "audit_service": ("osv", "pypi"),
        "audit_osv_url": ("http://127.0.0.1:1/v1/query", "http://127.0.0.1:2/v1/query"),
        "smoke_image": ("localhost:5000/a:1", "localhost:5000/b:1"),
        "smoke_variant": ("cuda", "fixture"),
        "smoke_platforms": ("linux/arm64", "linux/amd64"),
        "require_gpu": (True, "true"),
        "refresh_os": (True, "1"),
    }


def test_every_setting_has_a_sample(tmp_path: Path) -> None:
    assert set(samples(tmp_path)) == set(SETTINGS)


def test_names_are_derived() -> None:
    s = SETTINGS["base_mirror"]
    assert (s.flag, s.env) == ("--base-mirror", "AIBASE_BASE_MIRROR")
    assert (SETTINGS["audit_service"].flag, SETTINGS["audit_service"].env) == (
        "--service",
        "AIBASE_AUDIT_SERVICE",
    )
    assert SETTINGS["smoke_platforms"].env == "AIBASE_SMOKE_PLATFORMS"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_flag_beats_env_beats_file_beats_default(
    name: str, write_config: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config()
    other = tmp_path / "other"
    other.mkdir()
    (other / "images.toml").write_text(config.read_text())
    (other / "common.in").write_text("fastapi==0.115.0\n")
    monkeypatch.chdir(tmp_path)  # the default config is found here
    s = SETTINGS[name]
    flag, env = samples(tmp_path)[name]
    base = {} if name == "config" else {"config": str(config)}

    by_flag, _ = load(base | {name: flag}, env={s.env: env})
    assert by_flag.source(name) == "flag"
    assert by_flag.text(name) == ("true" if flag is True else flag)
    assert f"({s.flag})" in by_flag.render([name])

    by_env, _ = load(base, env={s.env: env})
    assert by_env.source(name) == "env"
    assert by_env.text(name) == env
    assert f"({s.env})" in by_env.render([name])

    rest, _ = load(base, env={})
    if s.file_key:
        assert rest.source(name) == "file"
        assert rest.text(name) not in ("", flag, env)
        assert f"(file {s.file_key})" in rest.render([name])
    else:
        assert rest.source(name) == "default"
        assert "(default)" in rest.render([name])
        defaults = {"config": str(tmp_path / "images.toml"), "out": str(tmp_path / "build")}
        assert rest.text(name) == defaults.get(name, s.default)


def test_file_values_are_what_images_toml_says(write_config: WriteConfig) -> None:
    settings, cfg = load({"config": str(write_config())}, env={})
    assert settings.text("registry") == cfg.registry == "localhost:5000"
    assert settings.text("platforms") == "linux/amd64,linux/arm64"


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("compression", "lz4", "AIBASE_COMPRESSION='lz4' is not one of gzip, zstd"),
        ("revision", "HEAD", "AIBASE_REVISION='HEAD' is not a full git commit hash"),
        ("debug", "maybe", "AIBASE_DEBUG='maybe' is not a boolean"),
        ("audit_service", "nvd", "AIBASE_AUDIT_SERVICE='nvd' is not one of osv, pypi"),
    ],
)
def test_bad_values_name_the_variable(
    name: str, value: str, problem: str, write_config: WriteConfig
) -> None:
    with pytest.raises(ConfigError) as info:
        load({"config": str(write_config())}, env={SETTINGS[name].env: value})
    assert problem in info.value.render()


def test_out_defaults_beside_the_found_config(
    write_config: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config()
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    settings, _ = load({}, env={})
    assert settings.config == config
    assert settings.out == tmp_path / "build"


def test_no_config_anywhere_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load({}, env={})
    assert "no images.toml in" in info.value.render() and "--config" in info.value.render()


def test_a_variable_for_another_task_neither_changes_nor_breaks_this_one(
    write_config: WriteConfig,
) -> None:
    env = {"AIBASE_REVISION": "abc1234", "AIBASE_AUDIT_SERVICE": "bogus", "AIBASE_OUT": "/x"}
    settings, _ = load({"config": str(write_config())}, env=env, names=("config", "platforms"))
    assert settings.source("revision") == "default" and settings.source("out") == "default"
    with pytest.raises(ConfigError):  # a task that takes the setting still validates it
        load({"config": str(write_config())}, env=env, names=("config", "revision"))


def test_a_secret_is_never_printed_or_reported(write_config: WriteConfig) -> None:
    settings, _ = load({"config": str(write_config())}, env={"AIBASE_NOTIFY_TOKEN": "s3cr3t"})
    assert settings.text("notify_token") == "s3cr3t"  # there for the code that needs it...
    assert "s3cr3t" not in settings.render(["notify_token"])  # ...and nowhere else
    assert ("notify_token", "***", "env") in settings.as_rows(["notify_token"])
