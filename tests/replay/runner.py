"""A GitHub Actions run, replayed on this host with the facts of each job's hosted runner.

GitHub cannot be reached from here, so this plays its part: it reads a workflow file, decides
which jobs run (`needs`, `if`, status functions, matrices from earlier jobs' outputs, with
GitHub's errors for an empty matrix or a failed `fromJSON`), and runs every `run:` step as
written, in bash, in a fresh checkout of its own, with the environment GitHub sets
(GITHUB_EVENT_NAME, GITHUB_ACTIONS, RUNNER_TEMP, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY ...) and
nothing of this host's. Each job gets its runner's facts, not this host's:

- the checkout has no `../shared` beside it (GitHub's workspace is `<repo>/<repo>`);
- its builder lists only the runner's native platform until docker/setup-qemu-action runs
  (a `docker` shim on PATH rewrites `buildx inspect`'s platform line, nothing else);
- secrets reach only jobs whose environment (or the repository) holds them; a job naming an
  environment that protects another branch fails, as GitHub refuses to deploy it;
- artifacts carry exactly the files upload-artifact names, and an upload under a name the
  run already holds fails unless `overwrite: true`.

The `uses:` actions are played by small stand-ins (checkout = git clone at the commit, with
its fetch depth; setup-python = a venv that then runs the workflow's own `pip install`;
login = `docker login`); an action without a stand-in fails the replay rather than being
skipped. Where a stand-in differs from the real action, it says so in the job log.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .expressions import ExpressionError, job_runs, substitute, to_text

# What a hosted runner label runs natively (GitHub's ubuntu images).
HOSTED = {
    "ubuntu-24.04": "linux/amd64",
    "ubuntu-latest": "linux/amd64",
    "ubuntu-24.04-arm": "linux/arm64",
}
TOOLS_VENV = Path(sys.executable).parent.parent  # the tools a runner image would carry
REAL_DOCKER = shutil.which("docker") or "/usr/bin/docker"
# This host's way out to the package registries (its TLS-intercepting CA, pip's settings): a
# hosted runner needs none of them, so they are network facts of here, not of the job.
HOST_NETWORK = (
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "PIP_CERT",
    "PIP_FIND_LINKS",
    "PIP_DEFAULT_TIMEOUT",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
)


def host_network() -> dict[str, str]:
    return {k: os.environ[k] for k in HOST_NETWORK if k in os.environ}


@dataclass(frozen=True)
class Environment:
    """A GitHub environment: its secrets, the branches it deploys, whether it asks a reviewer."""

    secrets: Mapping[str, str] = field(default_factory=dict)
    branches: tuple[str, ...] = ("main",)
    reviewers: bool = False


@dataclass(frozen=True)
class Org:
    """What an organisation sets up (docs/ci.md): variables, secrets, environments."""

    vars: Mapping[str, str]
    secrets: Mapping[str, str] = field(default_factory=dict)
    environments: Mapping[str, Environment] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    name: str  # push, pull_request, schedule, workflow_dispatch
    ref: str = "refs/heads/main"
    inputs: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Leg:
    """One job, or one leg of a matrix job."""

    job: str
    name: str
    result: str = "pending"  # success, failure, skipped
    log: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    matrix: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    workflow: str
    event: Event
    results: dict[str, str] = field(default_factory=dict)
    legs: list[Leg] = field(default_factory=list)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    approvals: list[str] = field(default_factory=list)  # legs a reviewer was asked to approve

    def legs_of(self, job: str) -> list[Leg]:
        return [leg for leg in self.legs if leg.job == job]

    def report(self) -> str:
        """Per job: its result, each leg, the leg's summary and the end of a failed log."""
        lines = [f"== replay {self.workflow} on {self.event.name} ({self.event.ref})"]
        for job, result in self.results.items():
            lines.append(f"-- {job}: {result}")
            for leg in self.legs_of(job):
                if leg.name != job:
                    lines.append(f"   [{leg.name}] {leg.result}")
                if leg.summary.strip():
                    lines += [f"   | {ln}" for ln in leg.summary.strip().splitlines()]
                if leg.result == "failure":
                    lines += [f"   ! {ln}" for ln in leg.log[-25:]]
        if self.approvals:
            lines.append(f"-- approvals requested: {', '.join(self.approvals)}")
        return "\n".join(lines)


class Replay:
    """Runs one workflow file of `origin` (a git repository) at its HEAD."""

    def __init__(self, origin: Path, workflow: str, org: Org, root: Path) -> None:
        self.origin = origin
        self.workflow = workflow
        self.org = org
        self.root = root
        self.spec: dict[str, Any] = yaml.safe_load(
            (origin / ".github" / "workflows" / workflow).read_text()
        )
        self.sha = _git(origin, "rev-parse", "HEAD")
        self.artifacts = root / "artifacts"
        self.run_id = int(time.time() * 1000) % 10**9
        self.attempt = 1

    def run(self, event: Event, only: Callable[[str, dict[str, Any]], bool] | None = None) -> Run:
        """Every job in `needs` order. `only(job, matrix)` may leave legs out (a cost cut:
        such a leg is reported as not replayed, and counts as a success for what follows)."""
        spec: dict[Any, Any] = self.spec  # YAML 1.1 reads the key `on:` as True
        triggers = spec.get(True, spec.get("on")) or {}
        assert event.name in triggers, f"{self.workflow} is not triggered by {event.name}"
        self.run_id += 1
        self.attempt = 1
        run = Run(self.workflow, event)
        jobs: dict[str, Any] = self.spec["jobs"]
        for name in _order(jobs):
            self._job(run, name, jobs[name], event, only)
        return run

    def rerun(self, run: Run, job: str) -> Run:
        """GitHub's "Re-run this job": the same run (its artifacts, its other jobs' results
        and outputs), this job's legs anew."""
        run.legs = [leg for leg in run.legs if leg.job != job]
        run.outputs.pop(job, None)
        self.attempt += 1
        self._job(run, job, self.spec["jobs"][job], run.event, None)
        return run

    # -- a job ---------------------------------------------------------------------------------
    def _context(self, run: Run, event: Event, needs: list[str]) -> dict[str, Any]:
        branch = event.ref.removeprefix("refs/heads/")
        return {
            "github": {
                "event_name": event.name,
                "ref": event.ref,
                "ref_name": branch,
                "sha": self.sha,
                "repository": "cerebral/ai-base",
                "run_id": str(self.run_id),
                "workflow": self.spec.get("name", self.workflow),
                "event": {"inputs": dict(event.inputs)},
            },
            "inputs": dict(event.inputs),
            "vars": dict(self.org.vars),
            "secrets": dict(self.org.secrets),
            "needs": {
                n: {"result": run.results.get(n, "skipped"), "outputs": run.outputs.get(n, {})}
                for n in needs
            },
            "env": {},
            "runner": {"os": "Linux", "temp": ""},
            "matrix": {},
            "strategy": {},
            "steps": {},
        }

    def _job(
        self,
        run: Run,
        name: str,
        spec: dict[str, Any],
        event: Event,
        only: Callable[[str, dict[str, Any]], bool] | None,
    ) -> None:
        needs = _as_list(spec.get("needs"))
        ctx = self._context(run, event, needs)
        results = [run.results.get(n, "skipped") for n in needs]
        condition = str(spec.get("if", "success()"))
        leg = Leg(name, name)
        try:
            if not job_runs(condition, ctx, results):
                run.results[name] = "skipped"
                return
            legs = self._matrix(spec, ctx)
        except ExpressionError as exc:
            leg.result = "failure"
            leg.log.append(f"Error when evaluating 'strategy' or 'if' for job '{name}': {exc}")
            run.legs.append(leg)
            run.results[name] = "failure"
            return
        results_here = []
        for matrix in legs:
            slug = "-".join(to_text(v) for v in matrix.values() if isinstance(v, str))[:60]
            leg = Leg(name, f"{name} ({slug})" if matrix else name, matrix=matrix)
            run.legs.append(leg)
            if only is not None and not only(name, matrix):
                leg.result = "success"
                leg.log.append("not replayed (left out by the test)")
                results_here.append("success")
                continue
            self._leg(run, leg, spec, {**ctx, "matrix": matrix})
            results_here.append(leg.result)
            run.outputs.setdefault(name, {}).update(leg.outputs)
        run.results[name] = "failure" if "failure" in results_here else "success"

    def _matrix(self, spec: dict[str, Any], ctx: dict[str, Any]) -> list[dict[str, Any]]:
        matrix = (spec.get("strategy") or {}).get("matrix")
        if matrix is None:
            return [{}]
        value = substitute(matrix, ctx)
        if isinstance(value, str):
            raise ExpressionError(f"matrix is not an object: {value!r}")
        include = value.pop("include", []) or []
        if value:
            raise ExpressionError("the replay knows only `include` matrices")
        if not isinstance(include, list) or not include:
            raise ExpressionError("Matrix vector 'include' does not contain any values")
        return [dict(x) for x in include]

    def _leg(self, run: Run, leg: Leg, spec: dict[str, Any], ctx: dict[str, Any]) -> None:
        try:
            label = to_text(substitute(spec["runs-on"], ctx))
            if label not in HOSTED:
                raise ExpressionError(f"no hosted runner has the label {label!r}: the job waits")
            environment = to_text(substitute(spec.get("environment", ""), ctx))
            if environment:
                self._environment(run, leg, environment, ctx)
            workdir = self.root / f"run{self.run_id}" / re.sub(r"[^\w.-]+", "_", leg.name)
            runner = _Runner(self, leg, workdir, HOSTED[label], ctx)
            runner.steps(spec.get("steps", []), spec.get("env") or {})
            leg.outputs = {
                k: to_text(substitute(v, runner.context))
                for k, v in (spec.get("outputs") or {}).items()
            }
        except ExpressionError as exc:
            leg.result = "failure"
            leg.log.append(f"Error: {exc}")

    def _environment(self, run: Run, leg: Leg, name: str, ctx: dict[str, Any]) -> None:
        env = self.org.environments.get(name)
        if env is None:
            env = Environment()  # GitHub creates it on first use: no secrets, no rules
        branch = ctx["github"]["ref_name"]
        if env.branches and branch not in env.branches:
            raise ExpressionError(
                f"Branch {branch!r} is not allowed to deploy to {name} due to environment "
                "protection rules"
            )
        if env.reviewers:
            run.approvals.append(leg.name)
            leg.log.append(f"waiting for a reviewer of environment {name}: approved (replay)")
        ctx["secrets"] = {**ctx["secrets"], **env.secrets}


class _Runner:
    """One leg's machine: its workspace, temp, PATH, files GitHub reads back."""

    def __init__(
        self, replay: Replay, leg: Leg, workdir: Path, native: str, ctx: dict[str, Any]
    ) -> None:
        shutil.rmtree(workdir, ignore_errors=True)
        self.replay, self.leg, self.native = replay, leg, native
        self.workspace = workdir / "work" / "ai-base" / "ai-base"
        self.temp = workdir / "temp"
        self.bin = workdir / "bin"
        for d in (self.workspace, self.temp, self.bin):
            d.mkdir(parents=True)
        self.files = {
            k: self.temp / f"{k.lower()}.txt"
            for k in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY")
        }
        self.path = [
            str(self.bin),
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
        self.platforms = [native]
        self._write_docker_shim()
        self.context = {**ctx, "runner": {"os": "Linux", "temp": str(self.temp)}}
        self.env: dict[str, str] = {}

    def _write_docker_shim(self) -> None:
        shim = self.bin / "docker"
        shim.write_text(
            "#!/bin/bash\n# the runner's builder: its native platform (+ QEMU's once set up)\n"
            'if [ "$1" = buildx ] && [ "$2" = inspect ]; then\n'
            f'  "{REAL_DOCKER}" "$@" | sed -E "s#^Platforms:.*#Platforms: '
            f'$(cat {self.bin}/.platforms)#"\n'
            "  exit ${PIPESTATUS[0]}\nfi\n"
            f'exec "{REAL_DOCKER}" "$@"\n'
        )
        shim.chmod(0o755)
        (self.bin / ".platforms").write_text(", ".join(self.platforms))

    def base_env(self) -> dict[str, str]:
        github = self.context["github"]
        return {
            **host_network(),
            "PATH": ":".join(self.path),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": github["event_name"],
            "GITHUB_REF": github["ref"],
            "GITHUB_REF_NAME": github["ref_name"],
            "GITHUB_SHA": github["sha"],
            "GITHUB_REPOSITORY": github["repository"],
            "GITHUB_RUN_ID": github["run_id"],
            "GITHUB_RUN_ATTEMPT": str(self.replay.attempt),
            "GITHUB_JOB": self.leg.job,
            "GITHUB_WORKSPACE": str(self.workspace),
            "RUNNER_TEMP": str(self.temp),
            "RUNNER_OS": "Linux",
            "RUNNER_ARCH": "ARM64" if self.native == "linux/arm64" else "X64",
            "ImageOS": "ubuntu24",
            "DOCKER_CONFIG": str(self.temp / "docker-config"),
            **{k: str(v) for k, v in self.files.items()},
        }

    def steps(self, steps: list[dict[str, Any]], job_env: dict[str, Any]) -> None:
        workflow_env = substitute(self.replay.spec.get("env") or {}, self.context)
        self.env = {k: to_text(v) for k, v in workflow_env.items()}
        self.context["env"] = dict(self.env)
        self.env |= {k: to_text(v) for k, v in substitute(job_env, self.context).items()}
        self.context["env"] = dict(self.env)
        failed = False
        for i, step in enumerate(steps):
            condition = str(step.get("if", "success()"))
            # a step's status functions read the steps before it, as a job's read its needs
            if not job_runs(condition, self.context, ["failure"] if failed else []):
                continue
            ok = self._step(i, step)
            failed = failed or not ok
        self.leg.summary = _read(self.files["GITHUB_STEP_SUMMARY"])
        self.leg.result = "failure" if failed else "success"

    def masked(self, text: str) -> str:
        """GitHub writes every secret's value as *** in the log."""
        for value in self.context["secrets"].values():
            if value:
                text = text.replace(str(value), "***")
        return text

    def _step(self, i: int, step: dict[str, Any]) -> bool:
        step_env = {
            k: to_text(v) for k, v in substitute(step.get("env") or {}, self.context).items()
        }
        env = {**self.base_env(), **self.env, **step_env}
        for f in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH"):
            self.files[f].write_text("")
        if "uses" in step:
            action = str(step["uses"]).split("@")[0]
            inputs = {
                k: to_text(v) for k, v in substitute(step.get("with") or {}, self.context).items()
            }
            self.leg.log.append(self.masked(f"> uses {action} {inputs}"))
            play = ACTIONS.get(action)
            if play is None:
                self.leg.log.append(f"no stand-in for {action}: the replay cannot run this step")
                return False
            try:
                play(self, inputs, env)
            except ActionFailed as exc:
                self.leg.log.append(f"Error: {exc}")
                return False
            return True
        script = to_text(substitute(step["run"], self.context))
        path = self.temp / f"step-{i}.sh"
        path.write_text(script)
        self.leg.log.append(self.masked(f"> run: {script.strip()}"))
        shell = ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)]
        start = time.monotonic()
        proc = subprocess.run(
            shell,
            cwd=self.workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        out = self.masked(proc.stdout + proc.stderr).rstrip()
        self.leg.log += out.splitlines()
        self.leg.log.append(f"  (step took {time.monotonic() - start:.1f} s)")
        if proc.returncode:
            self.leg.log.append(f"Error: Process completed with exit code {proc.returncode}.")
        if "id" in step:
            outputs = _parse_outputs(_read(self.files["GITHUB_OUTPUT"]))
            self.context["steps"][step["id"]] = {"outputs": outputs}
        for line in _read(self.files["GITHUB_ENV"]).splitlines():
            key, sep, value = line.partition("=")
            if sep:
                self.env[key] = value
        self.path[:0] = _read(self.files["GITHUB_PATH"]).split()
        return proc.returncode == 0


class ActionFailed(Exception):
    pass


# -- the actions' stand-ins --------------------------------------------------------------------
def _checkout(r: _Runner, inputs: dict[str, str], env: dict[str, str]) -> None:
    depth = inputs.get("fetch-depth", "1")
    argv = ["git", "clone", "-q"]
    if depth != "0":
        argv += ["--depth", depth]
    argv += [f"file://{r.replay.origin}", str(r.workspace)]
    shutil.rmtree(r.workspace)
    _must(argv, env)
    _must(["git", "-C", str(r.workspace), "checkout", "-q", r.replay.sha], env)


def _setup_python(r: _Runner, inputs: dict[str, str], env: dict[str, str]) -> None:
    """A fresh Python 3.11 whose site sees the runner image's tools (no network needed for
    them); the workflow's own `pip install -e .` then installs this checkout into it."""
    if inputs.get("python-version") != "3.11":
        raise ActionFailed(f"the replay has Python 3.11 only, not {inputs.get('python-version')}")
    venv = r.temp / "python"
    _must([sys.executable, "-m", "venv", "--without-pip", str(venv)], env)
    tools = subprocess.run(
        [sys.executable, "-c", "import site;print(site.getsitepackages()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "runner-tools.pth").write_text(tools + "\n")
    # the console scripts `pip install -e .` leaves on GitHub (pip-audit: `invoke audit`)
    for tool, module in (
        ("invoke", "invoke"),
        ("nox", "nox"),
        ("pip", "pip"),
        ("pip-audit", "pip_audit"),
    ):
        script = venv / "bin" / tool
        script.write_text(f'#!/bin/sh\nexec "{venv}/bin/python" -m {module} "$@"\n')
        script.chmod(0o755)
    r.path[:0] = [str(r.bin), str(venv / "bin")]
    r.path = list(dict.fromkeys(r.path))


def _setup_qemu(r: _Runner, _inputs: dict[str, str], _env: dict[str, str]) -> None:
    r.platforms = ["linux/amd64", "linux/arm64"]
    (r.bin / ".platforms").write_text(", ".join(r.platforms))


def _setup_buildx(r: _Runner, inputs: dict[str, str], _env: dict[str, str]) -> None:
    if inputs.get("driver", "docker-container") != "docker":
        r.leg.log.append(
            f"stand-in: the host's docker driver plays the {inputs.get('driver')} builder "
            "(its moby/buildkit image is on Docker Hub, out of reach here)"
        )


def _login(_r: _Runner, inputs: dict[str, str], env: dict[str, str]) -> None:
    user, password = inputs.get("username", ""), inputs.get("password", "")
    if not user or not password:
        raise ActionFailed("Username and password required")
    registry = inputs.get("registry", "")
    proc = subprocess.run(
        ["docker", "login", registry, "-u", user, "--password-stdin"],
        input=password,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise ActionFailed(f"docker login {registry}: {proc.stderr.strip()}")


def _upload(r: _Runner, inputs: dict[str, str], _env: dict[str, str]) -> None:
    name = inputs.get("name") or "artifact"
    dest = r.replay.artifacts / name
    if dest.exists() and inputs.get("overwrite") != "true":
        raise ActionFailed(
            f"Failed to CreateArtifact: an artifact with this name already exists on the "
            f"workflow run: {name}"
        )
    found: list[tuple[Path, Path]] = []
    for pattern in inputs.get("path", "").split():
        target = r.workspace / pattern
        if target.is_dir():
            found += [(f, f.relative_to(target)) for f in target.rglob("*") if f.is_file()]
        elif target.is_file():
            found.append((target, Path(target.name)))
    if not found:
        if inputs.get("if-no-files-found", "warn") == "error":
            raise ActionFailed(f"No files were found with the provided path: {inputs.get('path')}")
        return
    shutil.rmtree(dest, ignore_errors=True)
    for src, rel in found:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dest / rel)


def _download(r: _Runner, inputs: dict[str, str], _env: dict[str, str]) -> None:
    into = r.workspace / inputs.get("path", ".")
    if inputs.get("name"):
        chosen = [r.replay.artifacts / inputs["name"]]
        if not chosen[0].is_dir():
            raise ActionFailed(f"Artifact not found for name: {inputs['name']}")
    else:
        pattern = re.compile(re.escape(inputs.get("pattern", "*")).replace(r"\*", ".*") + "$")
        store = r.replay.artifacts
        chosen = (
            sorted(p for p in store.glob("*") if pattern.match(p.name)) if store.exists() else []
        )
    merge = inputs.get("merge-multiple") == "true"
    for art in chosen:
        target = into if merge or "name" in inputs else into / art.name
        for f in art.rglob("*"):
            if f.is_file():
                (target / f.relative_to(art)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(f, target / f.relative_to(art))


ACTIONS: dict[str, Callable[[_Runner, dict[str, str], dict[str, str]], None]] = {
    "actions/checkout": _checkout,
    "actions/setup-python": _setup_python,
    "docker/setup-qemu-action": _setup_qemu,
    "docker/setup-buildx-action": _setup_buildx,
    "docker/login-action": _login,
    "actions/upload-artifact": _upload,
    "actions/download-artifact": _download,
}


# -- small helpers -----------------------------------------------------------------------------
def _must(argv: list[str], env: Mapping[str, str]) -> None:
    proc = subprocess.run(argv, env=dict(env), capture_output=True, text=True, check=False)
    if proc.returncode:
        raise ActionFailed(f"{' '.join(argv)}: {proc.stderr.strip()}")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _parse_outputs(text: str) -> dict[str, str]:
    """`name=value` lines and `name<<DELIM ... DELIM` blocks, as GitHub reads GITHUB_OUTPUT."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            body = []
            for more in lines:
                if more == delim:
                    break
                body.append(more)
            out[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
    return out


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _order(jobs: dict[str, Any]) -> list[str]:
    done: list[str] = []
    while len(done) < len(jobs):
        ready = [
            j
            for j in jobs
            if j not in done and all(n in done for n in _as_list(jobs[j].get("needs")))
        ]
        assert ready, "a cycle in needs"
        done += ready
    return done
