"""Integration fixtures: a real Docker Engine with buildx, a real registry on loopback, and
stand-in bases on the mirror. Locally these skip with the reason when the engine is missing;
with CI set they fail instead."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from aibase.build.lock_format import BODY_RE, body_digest, split_header
from aibase.build.plan import promoted_tags
from aibase.config.loader import load_config
from aibase.config.paths import Paths
from aibase.config.precedence import resolve_one
from aibase.config.settings import SETTINGS
from aibase.host import engine, local_registry
from aibase.host.local_registry import Tls
from aibase.host.standins import plan_standins, push_standins
from aibase.registry.client import RegistryClient
from aibase.registry.refs import parse_ref
from aibase.state import VariantState, read_variant

from .sharing import once
from .sharing import pytest_runtest_protocol as pytest_runtest_protocol  # a hook: found here

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures"
FIXTURE_CONFIG = FIXTURE / "images.toml"
REGISTRY = "localhost:5000"
MIRROR = f"{REGISTRY}/mirror"
IT_REPO = "cerebral/ai-base-fixture"  # the fixture config's own: smoke-fixture reads it
BUILT_REF = REPO / "build" / "integration-fixture.ref"  # what smoke-fixture tests


# Where the tests keep the host cache (rootfs tarballs, registry data): the user's, as
# `invoke` itself would use it, so the stand-ins are bootstrapped once per host.
HOST_PATHS = Paths(Path("build"), Path(resolve_one(SETTINGS["cache"], {}, os.environ, {}).text))


@pytest.fixture(scope="session")
def engine_ready() -> None:
    problem = engine.engine_problem(engine.gather_engine_facts(), ["linux/amd64", "linux/arm64"])
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI requires the engine, but: {problem}")
        pytest.skip(f"needs a Docker Engine with buildx and QEMU: {problem}")


# The files that take longest (a warm run's --durations, summed per file), run first: the
# workers then end together instead of one finishing a long file alone (xdist hands whole
# files out in collection order). Only the speed depends on this list, never a result.
LONGEST_FIRST = (
    "test_fail_closed.py",
    "test_workflow_replay.py",
    "test_job_graph.py",
    "test_examples.py",
    "test_images.py",
    "test_attestations.py",
    "test_rerun.py",
    "test_pipeline.py",
    "test_audit.py",
    "test_update.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: keeps file order


@pytest.fixture(scope="session")
def registry(
    engine_ready: None,  # noqa: ARG001 (the engine is checked first)
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    def start() -> str:
        local_registry.start_registry(REGISTRY, HOST_PATHS)
        forget_promotions()  # once: a second worker must not unpromote the first one's work
        return REGISTRY

    return once(tmp_path_factory, "registry", start, str, str)


def forget_promotions(repo: str = IT_REPO) -> list[str]:
    """Start each session as a new machine does, with nothing promoted in the fixture's
    repository: the host's registry outlives sessions, and a session from a commit that is
    not an ancestor of this one (another branch) leaves its index promoted, which this
    session's promote then rightly refuses as a rollback. The index is deleted by digest
    (distribution deletes no tag), which drops the tags that point to it too."""
    variant = load_config(FIXTURE_CONFIG, env={}).variant("fixture")
    with RegistryClient(REGISTRY) as client:
        digests = {d for tag in promoted_tags(variant) if (d := client.head_manifest(repo, tag))}
    for digest in sorted(digests):
        resp = httpx.delete(f"http://{REGISTRY}/v2/{repo}/manifests/{digest}", timeout=30)
        assert resp.status_code in (202, 404), (
            f"cannot forget {repo}@{digest}: HTTP {resp.status_code} (the local registry "
            "deletes when started by registry-up: storage.delete.enabled)"
        )
    return sorted(digests)


@pytest.fixture(scope="session")
def standins(registry: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Stand-in bases on the mirror (bootstrapped once; the rootfs tarballs are cached)."""
    return once(tmp_path_factory, "standins", lambda: push_missing_standins(registry), str, str)


def push_missing_standins(registry: str) -> str:
    cfg = load_config(FIXTURE_CONFIG, env={})
    wanted = plan_standins(cfg, MIRROR)
    with RegistryClient(registry) as client:
        missing = []
        for s in wanted:
            ref = parse_ref(s.target)
            if client.head_manifest(ref.repository, ref.reference) is None:
                missing.append(s.target)
    if missing:
        push_standins(cfg, MIRROR, cfg.platforms, HOST_PATHS.rootfs)
    print(
        f"\nNOTE: base images are STAND-INS (Debian 12 + python3.11) from {MIRROR}: "
        + ", ".join(s.target for s in wanted)
    )
    return MIRROR


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str


def invoke_in_background(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`invoke` as a second, concurrent run (stdout+stderr in one pipe, line by line)."""
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", *args],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def invoke(
    *args: str, env: dict[str, str] | None = None, timeout: int = 3000, cwd: Path = REPO
) -> Run:
    """Run `invoke` as a user would; output is echoed for the test log."""
    return _run([sys.executable, "-m", "invoke"], args, env, timeout, cwd)


def ai(*args: str, env: dict[str, str] | None = None, timeout: int = 3000) -> Run:
    """Run the repository's `./ai` as the docs write it (it needs the project's .venv)."""
    return _run([str(REPO / "ai")], args, env, timeout, REPO)


def _run(
    program: list[str], args: tuple[str, ...], env: dict[str, str] | None, timeout: int, cwd: Path
) -> Run:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [*program, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    out = proc.stdout + proc.stderr
    name = Path(program[-1]).name
    print(f"\n$ {name} {' '.join(args)}  -> exit {proc.returncode}\n{out[-6000:]}")
    return Run(proc.returncode, out)


@dataclass(frozen=True)
class PytestRun:
    returncode: int
    output: str
    outcomes: dict[str, int]  # {"passed": 1, "deselected": 3}: the summary line, parsed

    @property
    def ran(self) -> dict[str, int]:
        """What the selected tests did: {"failed": 1} is one test, failed, and nothing else."""
        return {k: n for k, n in self.outcomes.items() if k != "deselected"}


def run_pytest(*args: str, cwd: Path = REPO, env: Mapping[str, str] | None = None) -> PytestRun:
    """pytest in a process of its own, as a user runs it; env: its whole environment
    (default: this one's)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        # an xdist worker's own variables stay with it: the run inside is a session of its own
        env=dict(env) if env is not None else without_xdist(os.environ),
        capture_output=True,
        text=True,
        check=False,
    )
    out = proc.stdout + proc.stderr
    print(f"\n$ pytest {' '.join(args)}  -> exit {proc.returncode}\n{out[-3000:]}")
    summary = re.findall(r"^=+ (.*) in [\d.]+s(?: \(.*\))? =+$", out, re.M)
    counts = re.findall(r"(\d+) (\w+)", summary[-1]) if summary else []
    return PytestRun(proc.returncode, out, {word: int(n) for n, word in counts})


def without_xdist(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith("PYTEST_XDIST_")}


def run_smoke_suite(config: Path, image: str, *args: str, variant: str = "fixture") -> PytestRun:
    """The smoke suite (what `nox -s smoke-*` runs) against image."""
    smoke = ["--config", str(config), "--variant", variant, "--image", image, *args]
    return run_pytest("tests/smoke", "-rs", *smoke)


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


def env_for(out: Path, **extra: str) -> dict[str, str]:
    return {"AIBASE_OUT": str(out), "AIBASE_BASE_MIRROR": MIRROR} | extra


@dataclass(frozen=True)
class Built:
    """The fixture variant after one full `build-all` into IT_REPO."""

    out: Path
    index_digest: str
    platform_digests: dict[str, str]
    run: Run
    ca_bundle: Path | None = None  # the bundle the build had as a secret (with a marker CA)

    def dump(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "index_digest": self.index_digest,
            "platform_digests": self.platform_digests,
            "run": [self.run.returncode, self.run.output],
            "ca_bundle": str(self.ca_bundle) if self.ca_bundle else None,
        }

    @classmethod
    def load(cls, record: dict[str, Any]) -> Built:
        bundle = record["ca_bundle"]
        return cls(
            Path(record["out"]),
            record["index_digest"],
            dict(record["platform_digests"]),
            Run(*record["run"]),
            Path(bundle) if bundle else None,
        )


def variant_state(out: Path, repo: str = IT_REPO, variant: str = "fixture") -> VariantState:
    state = read_variant(Paths(out, Path()).variant_state(repo, variant))
    assert state is not None, f"no state under {out}"
    return state


@pytest.fixture(scope="session")
def built(
    standins: str,  # noqa: ARG001 (needed first: the fixture builds FROM the stand-ins)
    tmp_path_factory: pytest.TempPathFactory,
) -> Built:
    """One build-all per session, shared by every xdist worker."""

    def make() -> Built:
        return build_fixture(tmp_path_factory.mktemp("built"))

    return once(tmp_path_factory, "built", make, Built.dump, Built.load)


def build_fixture(out: Path) -> Built:
    bundle = marker_ca_bundle(out / "ca-bundle.pem")  # a secret the provenance must not hold
    run = invoke(
        "build-all",
        "--config",
        str(FIXTURE_CONFIG),
        "--repository",
        IT_REPO,
        env=env_for(out, AIBASE_CA_BUNDLE=str(bundle)),
    )
    assert run.returncode == 0, run.output[-3000:]
    state = variant_state(out)
    assert state.merged is not None and state.verified is not None
    # smoke-fixture (the next nox session) tests exactly this index, not whatever the
    # floating tag serves by then
    BUILT_REF.parent.mkdir(parents=True, exist_ok=True)
    BUILT_REF.write_text(f"{REGISTRY}/{IT_REPO}@{state.merged.index_digest}\n")
    return Built(out, state.merged.index_digest, dict(state.verified.platforms), run, bundle)


HOST_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def marker_ca_bundle(path: Path) -> Path:
    """The host's CA bundle plus a CA made here: still a working bundle, and a certificate
    found nowhere else (a marker for "the CA bundle leaked")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = path.with_suffix(".key")
    one = ["-subj", "/CN=ai-base marker CA", "-keyout", str(key), "-out", f"{path}.one"]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", *one],
        check=True,
        capture_output=True,
    )
    host = HOST_BUNDLE.read_text() if HOST_BUNDLE.is_file() else ""
    path.write_text(host + Path(f"{path}.one").read_text())
    return path


def docker_login(host: str, user: str, password: str, docker_config: Path) -> None:
    """`docker login` into a config folder of the test's own (never the user's)."""
    subprocess.run(
        ["docker", "login", host, "-u", user, "--password-stdin"],
        input=password,
        text=True,
        check=True,
        capture_output=True,
        env={**os.environ, "DOCKER_CONFIG": str(docker_config)},
    )


def make_index(tag: str, *images: str) -> str:
    """An index of these images pushed under tag (a test's own, e.g. a lying one)."""
    subprocess.run(["docker", "buildx", "imagetools", "create", "--tag", tag, *images], check=True)
    return tag


def push_image(dockerfile: str, ref: str, tmp_path: Path, platform: str = "linux/amd64") -> str:
    """Build a one-off image (a broken or lying one, for a test) and push it under ref."""
    ctx = tmp_path / f"ctx-{abs(hash(ref))}"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    subprocess.run(
        [
            "docker",
            "buildx",
            "build",
            "--platform",
            platform,
            "--provenance=false",
            "--secret",
            "id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt",
            "--output",
            f"type=image,name={ref},push=true",
            str(ctx),
        ],
        check=True,
    )
    return ref


def floating_digest(repo: str = IT_REPO, tag: str = "fixture") -> str | None:
    with RegistryClient(REGISTRY) as client:
        return client.head_manifest(repo, tag)


def registry_snapshot() -> dict[str, dict[str, str | None]]:
    """Every repository's tags and what they point to: proves 'nothing changed'."""
    snap: dict[str, dict[str, str | None]] = {}
    with RegistryClient(REGISTRY) as client:
        for repo in client.catalog():
            snap[repo] = {t: client.head_manifest(repo, t) for t in client.list_tags(repo)}
    return snap


def copy_fixture(
    dest: Path,
    *,
    in_edit: tuple[str, str] | None = None,
    dockerfile_edit: tuple[str, str] | None = None,
) -> Path:
    """A private copy of the fixture (config, .in, locks) with absolute Dockerfile paths;
    dockerfile_edit (old, new) gives it its own edited copy of the cpu Dockerfile."""
    shutil.copytree(FIXTURE / "requirements", dest / "requirements")
    shutil.copytree(FIXTURE / "locks", dest / "locks")
    docker_dir = REPO / "docker"
    if dockerfile_edit:
        # inside this checkout (build/ is ignored): buildx records the checkout's revision in
        # the provenance, which verify holds against the revision label
        docker_dir = REPO / "build" / "docker-copies" / f"{dest.parent.name}-{uuid.uuid4().hex[:8]}"
        shutil.copytree(REPO / "docker", docker_dir)  # the template's context: install-group.sh
        original = (REPO / "docker" / "Dockerfile.ai-base.cpu").read_text()
        assert dockerfile_edit[0] in original
        (docker_dir / "Dockerfile.ai-base.cpu").write_text(original.replace(*dockerfile_edit))
    text = FIXTURE_CONFIG.read_text().replace("../../docker/", f"{docker_dir}/")
    cfg = dest / "images.toml"
    cfg.write_text(text)
    if in_edit:
        fin = dest / "requirements" / "fixture.in"
        old, new = in_edit
        assert old in fin.read_text()
        fin.write_text(fin.read_text().replace(old, new))
    return cfg


Notice = tuple[Any, dict[str, str]]  # a notice's JSON payload and its headers


@contextmanager
def notice_receiver(received: list[Notice]) -> Iterator[str]:
    """A loopback webhook that records each notice (payload, headers); yields its URL."""

    def record(request: Request) -> Answer:
        received.append((json.loads(request.body), request.headers))
        return 204, {}, b""

    with answering(record, "/hook") as url:
        yield url


@dataclass(frozen=True)
class Request:
    """What a test's loopback server was sent."""

    method: str
    path: str  # as sent: a proxy is sent the full URL
    headers: dict[str, str]
    body: bytes


Answer = tuple[int, dict[str, str], bytes]  # status, headers, body


@contextmanager
def answering(answer: Callable[[Request], Answer], path: str = "") -> Iterator[str]:
    """A loopback HTTP server for the block that hands every request, whatever its method,
    to `answer`; yields its URL with `path`."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            return

        def respond(self) -> None:
            size = int(self.headers.get("Content-Length", 0))
            got = Request(self.command, self.path, dict(self.headers), self.rfile.read(size))
            status, headers, body = answer(got)
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_HEAD = do_PUT = do_CONNECT = respond

    with serving(Handler, path) as url:
        yield url


@contextmanager
def serving(handler: Callable[..., BaseHTTPRequestHandler], path: str) -> Iterator[str]:
    """A handler served on a free loopback port for the block; yields its URL with `path`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{path}"
    finally:
        server.shutdown()
        server.server_close()


def make_tls(d: Path, name: str = "localhost") -> Tls:
    """A CA (d/ca.crt) and a server certificate it signed for `name` and 127.0.0.1."""
    d.mkdir(parents=True, exist_ok=True)

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        str(d / "ca.key"),
        "-out",
        str(d / "ca.crt"),
    )
    ssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        f"/CN={name}",
        "-keyout",
        str(d / "srv.key"),
        "-out",
        str(d / "srv.csr"),
    )
    (d / "ext").write_text(f"subjectAltName=DNS:{name},IP:127.0.0.1\n")
    ssl(
        "x509",
        "-req",
        "-in",
        str(d / "srv.csr"),
        "-CA",
        str(d / "ca.crt"),
        "-CAkey",
        str(d / "ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(d / "ext"),
        "-out",
        str(d / "srv.crt"),
    )
    return Tls(d / "srv.crt", d / "srv.key")


def one_variant_project(tmp: Path, pins: str, repository: str, allow: str = "") -> Path:
    """A one-variant, one-platform project in tmp: req/x.in holds pins, its lock goes to
    locks/ (written by the test), allow.toml holds allow."""
    (tmp / "req").mkdir(parents=True)
    (tmp / "req" / "x.in").write_text(pins)
    (tmp / "images.toml").write_text(f"""
[project]
repository = "{repository}"
registry = "localhost:5000"
platforms = ["linux/amd64"]
[variants.x]
dockerfile = "{REPO}/docker/Dockerfile.ai-base.cpu"
base = "python:3.11-slim"
python = "3.11"
size_budget_mb = 100
requirements = ["req/x.in"]
heavy_roots = []
lock_dir = "locks"
[variants.x.platforms."linux/amd64"]
""")
    (tmp / "allow.toml").write_text(allow)
    return tmp


def resealed(lock_text: str) -> str:
    """A lock edited by a test, its body-sha256 written again, as `./ai lock` writes it: the
    lock a pull request brings after `./ai update` (a hand edit is refused as edited)."""
    head, body = split_header(lock_text)
    if not BODY_RE.search(head):
        return head + f"# body-sha256: {body_digest(body)}\n" + body
    return BODY_RE.sub(f"# body-sha256: {body_digest(body)}", head) + body
