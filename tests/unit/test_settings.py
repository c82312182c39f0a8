"""Every setting follows one precedence, flag > env > file > default, lands in its typed
attribute, and the block every run prints names the right source. A setting added without a
sample here fails the first test; one declared without its attribute fails at import."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from types import UnionType
from typing import Any, get_args, get_origin, get_type_hints

import pytest
from mypy import api as mypy_api

from aibase.config import settings as declared
from aibase.config.loader import load
from aibase.config.resolved import Settings, declaration_problems
from aibase.config.settings import SETTINGS, Setting, SettingName
from aibase.errors import ConfigError

from .conftest import VALID, WriteConfig

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
    assert by_flag.resolved[name].source == "flag"
    assert by_flag.resolved[name].text == ("true" if flag is True else flag)
    assert f"({s.flag})" in by_flag.render([name])

    by_env, _ = load(base, env={s.env: env})
    assert by_env.resolved[name].source == "env"
    assert by_env.resolved[name].text == env
    assert f"({s.env})" in by_env.render([name])

    rest, _ = load(base, env={})
    given = {repr(getattr(by_flag, name)), repr(getattr(by_env, name))}
    assert given != {repr(getattr(rest, name))}  # the attribute follows the value
    if s.file_key:
        assert rest.resolved[name].source == "file"
        assert rest.resolved[name].text not in ("", flag, env)
        assert f"(file {s.file_key})" in rest.render([name])
    else:
        assert rest.resolved[name].source == "default"
        assert "(default)" in rest.render([name])
        defaults = {"config": str(tmp_path / "images.toml"), "out": str(tmp_path / "build")}
        assert rest.resolved[name].text == defaults.get(name, s.default)


def test_file_values_are_what_images_toml_says(write_config: WriteConfig) -> None:
    settings, cfg = load({"config": str(write_config())}, env={})
    assert settings.registry == cfg.registry == "localhost:5000"
    assert settings.platforms == ("linux/amd64", "linux/arm64")


def test_a_file_key_in_the_declaration_is_all_the_file_needs(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """images.toml's keys map to settings through the declarations alone: give one a
    file_key and [project] may hold it, and it is resolved from there (after flag and env)."""
    gpu_runner = replace(SETTINGS["gpu_runner"], file_key="project.gpu_runner")
    monkeypatch.setattr(declared, "SETTINGS", {**SETTINGS, "gpu_runner": gpu_runner})
    text = VALID.replace("[project]\n", '[project]\ngpu_runner = "gpu-a100"\n', 1)
    settings, _ = load({"config": str(write_config(text))}, env={})
    assert settings.gpu_runner == "gpu-a100"
    assert "gpu-a100  (file project.gpu_runner)" in settings.render(["gpu_runner"])
    by_env, _ = load({"config": str(write_config(text))}, env={"AIBASE_GPU_RUNNER": "gpu-h200"})
    assert by_env.gpu_runner == "gpu-h200"


def test_each_declared_setting_is_one_typed_attribute() -> None:
    assert declaration_problems(SETTINGS.values(), Settings, get_args(SettingName)) == []


def test_a_setting_declared_without_its_attribute_fails() -> None:
    extra = (*SETTINGS.values(), Setting("gpu_memory", "a new setting"))
    names = (*get_args(SettingName), "gpu_memory")
    assert declaration_problems(extra, Settings, names) == [
        "setting 'gpu_memory' has no attribute Settings.gpu_memory"
    ]
    assert declaration_problems(extra, Settings, get_args(SettingName)) == [
        "SettingName lacks 'gpu_memory'",
        "setting 'gpu_memory' has no attribute Settings.gpu_memory",
    ]


@dataclass(frozen=True)
class Undeclared(Settings):
    gpu_memory: str = ""


@dataclass(frozen=True)
class Mistyped:
    debug: str  # a bool setting
    registry: str


def test_an_attribute_without_a_declaration_or_of_the_wrong_type_fails() -> None:
    assert declaration_problems(SETTINGS.values(), Undeclared, get_args(SettingName)) == [
        "Undeclared.gpu_memory is not a declared setting"
    ]
    two = [SETTINGS["debug"], SETTINGS["registry"]]
    assert declaration_problems(two, Mistyped, ("debug", "registry")) == [
        "Mistyped.debug: str does not fit kind 'bool'"
    ]
    outside = replace(SETTINGS["registry"], file_key="build.registry")
    assert declaration_problems([SETTINGS["debug"], outside], Mistyped, ("debug", "registry")) == [
        "Mistyped.debug: str does not fit kind 'bool'",
        "setting 'registry': file_key 'build.registry' is not project.KEY",
    ]


def _fits(value: object, annotation: Any) -> bool:
    if isinstance(annotation, UnionType):
        return any(_fits(value, a) for a in get_args(annotation))
    if get_origin(annotation) is tuple:
        return isinstance(value, tuple) and all(isinstance(v, str) for v in value)
    return isinstance(value, type(None) if annotation is None else annotation)


@pytest.mark.parametrize("given", ["none", "flags"])
def test_every_attribute_holds_what_its_annotation_says(
    given: str, write_config: WriteConfig, tmp_path: Path
) -> None:
    config = write_config()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "images.toml").write_text(config.read_text())
    flags = {n: f for n, (f, _) in samples(tmp_path).items()} if given == "flags" else {}
    settings, _ = load({"config": str(config)} | flags, env={})
    hints = get_type_hints(Settings)
    wrong = {n: getattr(settings, n) for n in SETTINGS if not _fits(getattr(settings, n), hints[n])}
    assert wrong == {}


def test_a_misspelt_setting_fails_the_type_check(tmp_path: Path) -> None:
    """A typo in an attribute or in a setting's name is a mypy error, not a KeyError at run
    time (settings.text("notify_ur") passed the type check)."""
    snippet = tmp_path / "typo.py"
    snippet.write_text(
        "from aibase.config.resolved import Settings\n\n\n"
        "def url(s: Settings) -> str | None:\n"
        "    return s.notify_ur\n\n\n"
        "def where(s: Settings) -> str:\n"
        '    return s.source("revison")\n'
    )
    out, _, status = mypy_api.run(["--strict", "--no-incremental", str(snippet)])
    assert status == 1
    assert '"Settings" has no attribute "notify_ur"; maybe "notify_url"?' in out
    assert 'Argument 1 to "source" of "Settings" has incompatible type' in out


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("compression", "lz4", "AIBASE_COMPRESSION='lz4' is not one of gzip, zstd"),
        ("revision", "HEAD", "AIBASE_REVISION='HEAD' is not a full git commit hash"),
        ("debug", "maybe", "AIBASE_DEBUG='maybe' is not a boolean"),
        ("audit_service", "nvd", "AIBASE_AUDIT_SERVICE='nvd' is not one of osv, pypi"),
        ("jobs", "0", "AIBASE_JOBS='0' is not a positive number"),
        ("ca_bundle", "/nowhere/ca.pem", "AIBASE_CA_BUNDLE: CA bundle /nowhere/ca.pem not found"),
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
    assert settings.revision is None
    with pytest.raises(ConfigError):  # a task that takes the setting still validates it
        load({"config": str(write_config())}, env=env, names=("config", "revision"))


def test_a_secret_is_never_printed_or_reported(write_config: WriteConfig) -> None:
    settings, _ = load({"config": str(write_config())}, env={"AIBASE_NOTIFY_TOKEN": "s3cr3t"})
    assert settings.notify_token == "s3cr3t"  # there for the code that needs it...
    assert "s3cr3t" not in settings.render(["notify_token"])  # ...and nowhere else
    assert ("notify_token", "***", "env") in settings.as_rows(["notify_token"])
