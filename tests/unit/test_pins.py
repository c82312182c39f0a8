from __future__ import annotations

import httpx
import pytest

from aibase.build.plan import LABEL_NS
from aibase.config.loader import load_config
from aibase.config.model import Config
from aibase.errors import ConfigError, NotFound, RegistryUnreachable
from aibase.host.standins import STANDIN_LABEL
from aibase.registry.client import RegistryClient
from aibase.tools.base_pins import changed_lines, rewrite_base_pins, update_base_pins

from .conftest import VALID, FakeRegistry, WriteConfig

DIGEST = "sha256:" + "a" * 64


OTHER = "sha256:" + "b" * 64


def test_rewrite_changes_exactly_one_line_per_base() -> None:
    new = rewrite_base_pins(VALID, {"cpu": {"base": f"python:3.11-slim@{DIGEST}"}})
    diff = [(a, b) for a, b in zip(VALID.splitlines(), new.splitlines(), strict=True) if a != b]
    assert diff == [('base = "python:3.11-slim"', f'base = "python:3.11-slim@{DIGEST}"')]
    again = rewrite_base_pins(new, {"cpu": {"base": f"python:3.11-slim@{DIGEST}"}})
    assert again == new


def test_the_installer_is_pinned_beside_its_base() -> None:
    """The installer writes every group's files: an unpinned one would let a moved tag
    change the image with no reviewed line."""
    pins = {"cpu": {"base": f"python:3.11-slim@{DIGEST}", "installer": f"python:3.11-slim@{OTHER}"}}
    new = rewrite_base_pins(VALID, pins)
    assert changed_lines(VALID, new) == [
        ('base = "python:3.11-slim"', f'base = "python:3.11-slim@{DIGEST}"'),
        ("", f'installer = "python:3.11-slim@{OTHER}"'),
    ]
    assert new.index("installer = ") < new.index("[variants.cuda]")  # in its own table
    # a second update moves the existing line, adds none
    newer = rewrite_base_pins(new, {"cpu": {"installer": f"python:3.11-slim@{DIGEST}"}})
    assert changed_lines(new, newer) == [
        (f'installer = "python:3.11-slim@{OTHER}"', f'installer = "python:3.11-slim@{DIGEST}"')
    ]


MIRROR = "localhost:5000/mirror"
STANDIN = {"io.cerebral.ai-base.stand-in": "true", "io.cerebral.ai-base.stand-in.of": ""}


def _push_base(fake: FakeRegistry, repo: str, tag: str, labels: dict[str, str]) -> str:
    images = {
        p: fake.add_image(repo, p.split("/")[1], labels) for p in ("linux/amd64", "linux/arm64")
    }
    return fake.add_index(repo, images, tag)


def _standin(real: str) -> dict[str, str]:
    return STANDIN | {"io.cerebral.ai-base.stand-in.of": real}


def _config(write_config: WriteConfig, mirror: str | None = MIRROR) -> Config:
    return load_config(write_config(), flags={"base_mirror": mirror} if mirror else None, env={})


def _fill_mirror(
    fake: FakeRegistry,
    cuda_labels: dict[str, str] | None = None,
    python_labels: dict[str, str] | None = None,
) -> tuple[str, str]:
    py = _push_base(fake, "mirror/library/python", "3.11-slim", python_labels or {})
    cuda = ""
    if cuda_labels is not None:
        cuda = _push_base(fake, "mirror/nvidia/cuda", "12.4.1-runtime-ubuntu22.04", cuda_labels)
    return py, cuda


def test_a_real_base_in_the_mirror_is_pinned_without_a_note(
    write_config: WriteConfig, fake_registry: FakeRegistry
) -> None:
    py, cuda = _fill_mirror(fake_registry, cuda_labels={"maintainer": "NVIDIA"})
    cfg = _config(write_config)
    changes = update_base_pins(cfg, dry_run=False, open_client=fake_registry.client)
    assert f'base = "python:3.11-slim@{py}"' in [c.new for c in changes]
    assert f'base = "nvidia/cuda:12.4.1-runtime-ubuntu22.04@{cuda}"' in [c.new for c in changes]
    assert "STAND-IN" not in cfg.path.read_text()


def test_a_stand_in_is_refused_unless_asked_and_then_says_so(
    write_config: WriteConfig, fake_registry: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """bases-bootstrap's Debian 12 must never be pinned as if it were python:3.11-slim."""
    py, _ = _fill_mirror(
        fake_registry,
        cuda_labels=_standin("nvidia/cuda:12.4.1-runtime-ubuntu22.04"),
        python_labels=_standin("python:3.11-slim"),
    )
    cfg = _config(write_config)
    before = cfg.path.read_text()
    with pytest.raises(ConfigError) as info:
        update_base_pins(cfg, dry_run=False, open_client=fake_registry.client)
    message = info.value.render()
    assert f"the base mirror {MIRROR} holds STAND-INs" in message
    assert f"{MIRROR}/library/python:3.11-slim is a stand-in for python:3.11-slim" in message
    assert "nothing was pinned" in message and "--allow-stand-in" in message
    assert cfg.path.read_text() == before
    changes = update_base_pins(
        cfg, dry_run=False, allow_stand_in=True, open_client=fake_registry.client
    )
    note = "  # STAND-IN: Debian 12 from bases-bootstrap, NOT python:3.11-slim"
    assert f'base = "python:3.11-slim@{py}"{note}' in [c.new for c in changes]
    assert f'installer = "python:3.11-slim@{py}"{note}' in [c.new for c in changes]
    assert "STAND-IN pinned on request (--allow-stand-in)" in capsys.readouterr().err
    # the real base arriving later drops the note
    _push_base(fake_registry, "mirror/library/python", "3.11-slim", {})
    _push_base(fake_registry, "mirror/nvidia/cuda", "12.4.1-runtime-ubuntu22.04", {})
    update_base_pins(cfg, dry_run=False, open_client=fake_registry.client)
    assert "STAND-IN" not in cfg.path.read_text()


def test_a_base_missing_from_the_mirror_is_named_with_how_to_fill_it(
    write_config: WriteConfig, fake_registry: FakeRegistry
) -> None:
    _fill_mirror(fake_registry)  # python only, as the fixture's bases-bootstrap leaves it
    cfg = _config(write_config)
    before = cfg.path.read_text()
    with pytest.raises(NotFound) as info:
        update_base_pins(cfg, dry_run=False, open_client=fake_registry.client)
    message = info.value.render()
    cuda = "nvidia/cuda:12.4.1-runtime-ubuntu22.04"
    assert (
        f"not in the base mirror {MIRROR}: {cuda} (variant cuda): {MIRROR}/{cuda} does not exist"
        in message
    )
    assert f"docker buildx imagetools create --tag {MIRROR}/{cuda} {cuda}" in message
    assert f"./ai bases-bootstrap --base-mirror {MIRROR}" in message
    assert "check the repository, tag or digest" not in message
    assert cfg.path.read_text() == before


def test_without_a_mirror_an_unreachable_hub_points_at_base_mirror(
    write_config: WriteConfig,
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)

    def open_client(host: str) -> RegistryClient:
        return RegistryClient(
            host, credentials=None, sleep=lambda _: None, transport=httpx.MockTransport(refuse)
        )

    cfg = _config(write_config, mirror=None)
    with pytest.raises(RegistryUnreachable) as info:
        update_base_pins(cfg, dry_run=True, open_client=open_client)
    message = info.value.render()
    assert (
        "base python:3.11-slim: registry-1.docker.io cannot be reached and no base mirror is set"
        in message
    )
    assert "--base-mirror HOST/PREFIX (or AIBASE_BASE_MIRROR; docs/offline.md)" in message
    assert "registry-up" not in message and "AIBASE_REGISTRY " not in message


def test_the_stand_in_label_is_under_the_project_label_namespace() -> None:
    # host.standins cannot import build.plan (the layering), so it spells the label out
    assert f"{LABEL_NS}.stand-in" == STANDIN_LABEL
