"""docs/services.md, run as written: each situation's block (Docker for development, Docker
in CI, buildah without a daemon) builds examples/service FROM the fixture index this session
built (the one line the doc says to change: BASE=, here pinned by digest), and what each
leaves behind is checked: a container answering /health, a two-platform index whose images
report their own machine and the ujson they compiled."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aibase.registry.client import RegistryClient
from aibase.registry.oci import entry_platform, is_attestation
from aibase.registry.refs import parse_ref

from .conftest import IT_REPO, REGISTRY, REPO, Built

pytestmark = pytest.mark.engine
DOC = REPO / "docs" / "services.md"
MACHINES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
# heading of each situation in the doc -> the block under it
SITUATIONS = {
    "docker": "With Docker: build, run, ask it",
    "ci": "With Docker in CI",
    "daemonless": "Without a daemon",
}
FACTS = (
    "import json, platform, ujson; "
    "print(json.dumps([platform.machine(), ujson.__version__, ujson.__file__]))"
)


def doc_blocks(path: Path = DOC) -> dict[str, str]:
    """`## heading` -> the ```sh block under it."""
    blocks = {}
    for section in re.split(r"^## ", path.read_text(), flags=re.M)[1:]:
        heading = section.splitlines()[0]
        found = re.findall(r"^```sh\n(.*?)^```", section, flags=re.M | re.S)
        if found:
            assert len(found) == 1, f"{heading}: one block per situation"
            blocks[heading] = found[0]
    return blocks


def block(situation: str, base: str) -> str:
    heading = next(h for h in doc_blocks() if h.startswith(SITUATIONS[situation]))
    text = doc_blocks()[heading]
    lines = text.splitlines()
    assert sum(line.startswith("BASE=") for line in lines) == 1, text
    return "\n".join(f"BASE={base}" if line.startswith("BASE=") else line for line in lines)


# distribution 2.8's filesystem storage rewrites a tag's link file in place: a HEAD that
# lands during the rewrite (seen once: HEADs of the tag in the same second as its PUT) reads
# a torn file and answers 500 "invalid checksum digest format". Not what these tests check: run again.
TORN_TAG = re.compile(r"HEAD request to \S+/manifests/\S+: 500 Internal Server Error")


def run_block(text: str) -> str:
    started = time.monotonic()
    for attempt in (1, 2):
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", text],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=1500,
            check=False,
        )
        out = done.stdout + done.stderr
        if done.returncode == 0 or attempt == 2 or not TORN_TAG.search(out):
            break
        print(
            f"\n$ {text}\n-> the registry tore a tag while it was written; once more:\n{out[-600:]}"
        )
    return _finished(text, done.returncode, out, started)


def _finished(text: str, returncode: int, out: str, started: float) -> str:
    took = time.monotonic() - started
    print(f"\n$ {text}\n-> exit {returncode} in {took:.0f} s\n{out[-4000:]}")
    assert returncode == 0, out[-4000:]
    return out


def assignment(text: str, name: str) -> str:
    return next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{name}="))


def index_platforms(image: str) -> set[str]:
    ref = parse_ref(image)
    with RegistryClient(REGISTRY) as client:
        index = client.get_manifest(ref.repository, ref.reference)
    assert index.is_index, f"{image} is a single image, not an index"
    return {entry_platform(e) for e in index.json["manifests"] if not is_attestation(e)}


def image_facts(image: str, platform: str) -> list[str]:
    done = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--pull",
            "always",
            "--platform",
            platform,
            image,
            "python",
            "-c",
            FACTS,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def assert_serves_both_platforms(image: str) -> None:
    assert index_platforms(image) == set(MACHINES)
    for platform, machine in MACHINES.items():
        got_machine, ujson, where = image_facts(image, platform)
        assert (got_machine, ujson) == (machine, "5.10.0")
        assert where.endswith(".so"), where  # the C extension, compiled in the image


@pytest.fixture
def base(built: Built) -> str:
    return f"{REGISTRY}/{IT_REPO}@{built.index_digest}"


@pytest.fixture
def docker_images() -> Iterator[list[str]]:
    """Images a test leaves in the engine, removed after it."""
    made: list[str] = []
    yield made
    subprocess.run(["docker", "image", "rm", "-f", *made], capture_output=True, check=False)


@dataclass(frozen=True)
class Background:
    text: str
    proc: subprocess.Popen[bytes]
    log: Path
    started: float

    def result(self) -> str:
        returncode = self.proc.wait(timeout=1500)
        return _finished(self.text, returncode, self.log.read_text(), self.started)


@pytest.fixture(scope="module")
def daemonless(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    """The buildah block, started at this module's first test and awaited by its own: its
    arm64 half (QEMU, the longest part) runs beside the Docker blocks' on another core,
    which saves CI minutes. Whatever it adds to buildah's store goes again afterwards."""
    if shutil.which("buildah") is None:
        why = "needs buildah (scripts/setup-host-debian.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(f"CI requires it: {why}")
        pytest.skip(why)
    before = set(_buildah_ids())
    text = block("daemonless", f"{REGISTRY}/{IT_REPO}@{built.index_digest}")
    log = tmp_path_factory.mktemp("daemonless") / "buildah.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", text], cwd=REPO, stdout=sink, stderr=sink
        )
    yield Background(text, proc, log, time.monotonic())
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    subprocess.run(
        ["buildah", "manifest", "rm", "example-service"], capture_output=True, check=False
    )
    added = [i for i in _buildah_ids() if i not in before]
    if added:
        subprocess.run(["buildah", "rmi", "-f", *added], capture_output=True, check=False)


def _buildah_ids() -> list[str]:
    done = subprocess.run(
        ["buildah", "images", "-q", "--no-trunc"], capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def test_every_block_of_the_services_doc_is_run_here() -> None:
    """A new situation in the doc without a test here fails, engine or not."""
    headings = list(doc_blocks())
    assert len(headings) == len(SITUATIONS)
    for prefix in SITUATIONS.values():
        assert sum(h.startswith(prefix) for h in headings) == 1, (prefix, headings)


@pytest.mark.usefixtures("daemonless")
def test_the_development_block_builds_runs_and_answers(base: str, docker_images: list[str]) -> None:
    docker_images.append("example-service")
    out = run_block(block("docker", base))
    health = json.loads(next(ln for ln in out.splitlines() if ln.startswith('{"status"')))
    native = subprocess.run(
        ["uname", "-m"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert health["status"] == "ok" and health["machine"] == native
    assert health["ujson"] == "5.10.0" and health["ujson_built_from"].endswith(".so")


@pytest.mark.usefixtures("daemonless")
def test_the_ci_block_pushes_one_index_of_both_platforms(
    base: str, docker_images: list[str]
) -> None:
    text = block("ci", base)
    image = assignment(text, "IMAGE")
    docker_images.append(image)
    run_block(text)
    assert_serves_both_platforms(image)


def test_the_daemonless_block_builds_both_platforms_with_buildah(
    daemonless: Background, docker_images: list[str]
) -> None:
    image = assignment(daemonless.text, "IMAGE")
    docker_images.append(image)
    daemonless.result()
    assert_serves_both_platforms(image)
