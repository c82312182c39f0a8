"""The GitHub workflows, replayed job by job with the facts of GitHub's hosted runners
(tests/replay/runner.py): what an organisation that pushes this repository sees on its first
pull request, its first push to main, the weekly schedule, and a run whose plan fails.

The registry is what an organisation's is: TLS with a password, reached by a name that is
not `localhost` (so the plan's "a loopback registry cannot join jobs on separate machines"
check passes as on GitHub); the name resolves to this host's loopback. Each job logs in with
the environment's secrets, on its own docker config. The run's per-job output is printed."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from aibase.audit.osv_mirror import serve
from aibase.config.paths import Paths
from aibase.host.local_registry import start_registry, stop_registry
from aibase.registry.client import RegistryClient
from aibase.registry.credentials import Credentials
from tests.replay.runner import Environment, Event, Org, Replay, Run, host_network

from .conftest import MIRROR, REPO, make_tls, resealed, run_pytest
from .test_audit import COMMITTED

pytestmark = pytest.mark.engine
PORT = 5543
REPLAY_REPO = "cerebral/ai-base-replay"
RUNNERS = "linux/amd64=ubuntu-24.04,linux/arm64=ubuntu-24.04-arm"
HOSTS = Path("/etc/hosts")
ALIAS = "aibase-replay-registry"


def _loopback_name() -> tuple[str, bool]:
    """A registry name that is not `localhost` yet resolves to loopback only: this host's
    own name where it does (Debian and this sandbox map it to 127.0.x.1), else an alias
    added to /etc/hosts for the test (removed after). Returns (name, added)."""
    for name in (socket.gethostname(), ALIAS):
        try:
            found = {str(a[4][0]) for a in socket.getaddrinfo(name, PORT, socket.AF_INET)}
        except socket.gaierror:
            continue
        if found and all(a.startswith("127.") for a in found):
            return name, False
    if os.geteuid() != 0:
        pytest.skip(
            f"no name of this host resolves to loopback only, and adding {ALIAS} to "
            f"{HOSTS} needs root"
        )
    with HOSTS.open("a") as fh:
        fh.write(f"\n127.0.0.1 {ALIAS}\n")
    return ALIAS, True


@pytest.fixture(scope="module")
def org_registry(
    standins: str,  # noqa: ARG001 (needed first: the stand-in bases the org mirrors)
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Org]:
    """The organisation's registry (TLS + htpasswd, by name) and its documented set-up."""
    tmp = tmp_path_factory.mktemp("org-registry")
    name, added = _loopback_name()
    host = f"{name}:{PORT}"
    password = secrets.token_hex(16)
    tls = make_tls(tmp, name)
    htpasswd = tmp / "htpasswd"
    htpasswd.write_text(
        subprocess.run(
            ["htpasswd", "-Bbn", "publisher", password], capture_output=True, text=True, check=True
        ).stdout
    )
    paths = Paths(tmp / "out", tmp / "cache")
    listen = f"127.0.0.1:{PORT}"
    certs = [Path("/etc/docker/certs.d") / h for h in (host, listen)]
    for d in certs:  # the engine's trust, and the tool's (it reads the same folder)
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp / "ca.crt", d / "ca.crt")
    stop_registry(listen, paths)
    start_registry(listen, paths, htpasswd=htpasswd, tls=tls)
    creds = {"REGISTRY_USER": "publisher", "REGISTRY_PASSWORD": password}
    try:
        yield Org(
            vars={
                "AIBASE_REGISTRY": host,
                "AIBASE_RUNNERS": RUNNERS,
                "AIBASE_GPU_RUNNER": "none",
                "AIBASE_BASE_MIRROR": MIRROR,  # the stand-in bases (a pull-through mirror)
            },
            environments={
                "publish": Environment(secrets=creds),
                "production": Environment(secrets=creds, reviewers=True),
            },
        )
    finally:
        stop_registry(listen, paths)
        for d in certs:
            shutil.rmtree(d, ignore_errors=True)
        if added:
            HOSTS.write_text(HOSTS.read_text().replace(f"\n127.0.0.1 {ALIAS}\n", ""))


def _origin(tmp: Path, config: str | None = None) -> Path:
    """The repository as pushed to GitHub: this working tree (edits included), committed;
    `config` replaces images.toml (the organisation's own variants)."""
    origin = tmp / "origin"
    subprocess.run(["git", "clone", "-q", str(REPO), str(origin)], check=True)
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for rel in listed:
        src = REPO / rel
        if src.is_file():
            (origin / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, origin / rel)
        elif (origin / rel).exists():
            (origin / rel).unlink()
    if config is not None:
        (origin / "images.toml").write_text(config)
    git = ["git", "-C", str(origin), "-c", "user.name=replay", "-c", "user.email=replay@localhost"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "as pushed"], check=True)
    return origin


def _fixture_org_config() -> str:
    """An organisation whose images.toml has two variants: `fixture` (both locks committed)
    and `pending`, whose locks lock.yml has not made yet: cpu/linux/amd64's situation."""
    text = (REPO / "tests" / "fixtures" / "images.toml").read_text()
    text = text.replace('repository = "cerebral/ai-base-fixture"', f'repository = "{REPLAY_REPO}"')
    text = text.replace('"../../docker/', '"docker/')
    text = text.replace('"requirements/fixture.in"', '"tests/fixtures/requirements/fixture.in"')
    text = text.replace('lock_dir = "locks"', 'lock_dir = "tests/fixtures/locks"')
    pending = text[text.index("[variants.fixture]") :].replace(
        "variants.fixture", "variants.pending"
    )
    pending = pending.replace(
        'lock_dir = "tests/fixtures/locks"', 'lock_dir = "tests/fixtures/no-locks"'
    )
    return text + "\n" + pending


def _show(run: Run) -> str:
    text = run.report()
    print(f"\n{text}\n")
    return text


def test_a_pull_request_plans_on_a_runner_without_qemu(org_registry: Org, tmp_path: Path) -> None:
    """Item 1: the plan job of a pull request, on an x86 runner whose builder lists no
    linux/arm64, with cpu/linux/amd64's lock missing, plans what it can and says the rest;
    no other job runs."""
    # the review's advisories from loopback, never the public OSV API: the origin holds this
    # working tree, so an uncommitted lock edit here would be looked up there
    with serve(COMMITTED) as osv_url:
        org = replace(org_registry, vars={**org_registry.vars, "AIBASE_AUDIT_OSV_URL": osv_url})
        replay = Replay(_origin(tmp_path), "build.yml", org, tmp_path / "gh")
        run = replay.run(Event("pull_request", "refs/pull/7/merge"))
    text = _show(run)
    assert run.results["plan"] == "success", text
    after = {j: r for j, r in run.results.items() if j not in ("plan", "review")}
    assert after == dict.fromkeys(
        ["cell", "merge", "smoke", "smoke-gpu", "gate", "promote"], "skipped"
    ), text
    # the review: this working tree's locks against its commit (test_a_lock_change_... below)
    assert run.results["review"] == "success", text
    assert "### ai-base lock review since `HEAD^1`" in run.legs_of("review")[0].summary
    plan = run.legs_of("plan")[0]
    assert "cpu: waiting for lock.yml" in plan.summary
    assert "| cuda | linux/arm64 | ubuntu-24.04-arm | no |" in plan.summary
    log = "\n".join(plan.log)
    # every leg that can be built shows its command; the waiting one does not
    assert re.search(r"\[dry-run\] \$ docker buildx build .*--platform linux/arm64", log)
    assert "build cuda/linux/amd64" in log and "build cpu/linux/amd64" not in log


def test_a_lock_change_with_a_real_advisory_fails_the_review(tmp_path: Path) -> None:
    """A pull request whose lock moves requests to 2.25.0 (PYSEC-2023-74): build.yml's review
    job, in its runner's two-commit clone, diffs against the base and fails, the advisory and
    its fix in the job summary; the organisation's OSV mirror (AIBASE_AUDIT_OSV_URL) serves
    the committed cut of the real advisory database on loopback."""
    origin = _origin(tmp_path)
    lock = origin / "requirements" / "locks" / "cuda-linux-arm64.txt"
    # as `./ai update` leaves it: the review refuses a hand-edited lock before any advisory
    lock.write_text(
        resealed(lock.read_text().replace("\nrequests==2.32.3 ", "\nrequests==2.25.0 "))
    )
    git = ["git", "-C", str(origin), "-c", "user.name=pr", "-c", "user.email=pr@localhost"]
    subprocess.run([*git, "commit", "-q", "-am", "requests 2.25.0"], check=True)
    with serve(COMMITTED) as osv_url:
        org = Org(vars={"AIBASE_AUDIT_OSV_URL": osv_url})
        replay = Replay(origin, "build.yml", org, tmp_path / "gh")
        run = replay.run(
            Event("pull_request", "refs/pull/8/merge"), only=lambda job, _m: job == "review"
        )
    text = _show(run)
    assert run.results["review"] == "failure", text
    summary = run.legs_of("review")[0].summary
    row = "| requests | changed | 2.32.3 | 2.25.0 | **NOT ALLOWED** PYSEC-2023-74 ("
    assert "#### cuda-linux-arm64.txt" in summary and row in summary, text
    log = "\n".join(run.legs_of("review")[0].log)
    assert "cuda-linux-arm64.txt: requests 2.25.0 has PYSEC-2023-74" in log
    assert "move requests to 2.31.0" in log


def test_a_failed_plan_skips_every_job_after_it(org_registry: Org, tmp_path: Path) -> None:
    """Item 7: the plan fails (here: the organisation forgot the variable AIBASE_REGISTRY, so
    images.toml's loopback registry is refused for jobs on separate machines). Nothing after
    it runs: no fromJSON('') errors, and no reviewer is asked to approve a promotion."""
    org = Org(
        {k: v for k, v in org_registry.vars.items() if k != "AIBASE_REGISTRY"},
        environments=org_registry.environments,
    )
    replay = Replay(_origin(tmp_path), "build.yml", org, tmp_path / "gh")
    run = replay.run(Event("push"), only=lambda job, _matrix: job == "plan")
    text = _show(run)
    assert run.results["plan"] == "failure"
    assert "set the repository variable AIBASE_REGISTRY" in "\n".join(run.legs_of("plan")[0].log)
    after = {j: r for j, r in run.results.items() if j != "plan"}
    assert after == dict.fromkeys(after, "skipped"), text
    assert run.approvals == []


def test_push_to_main_builds_what_is_locked_and_the_schedule_after_it(
    org_registry: Org, tmp_path: Path
) -> None:
    """Item 2 (and 10): the first push to main of an organisation with a variant still
    waiting for its lock: every job is green, the waiting variant is named in the plan's
    summary and has no leg, the locked one is built on each platform's runner, merged,
    verified, smoke-tested, passed by the gate, approved and promoted with the environments'
    secrets; the promote job re-run alone succeeds without writing (its artifact replaced).
    Then the weekly schedule's plan."""
    origin = _origin(tmp_path, _fixture_org_config())
    replay = Replay(origin, "build.yml", org_registry, tmp_path / "gh")
    run = replay.run(Event("push"))
    text = _show(run)
    assert set(run.results.values()) <= {"success", "skipped"}, text
    assert run.results["promote"] == "success" and run.results["smoke-gpu"] == "skipped"
    plan = run.legs_of("plan")[0]
    assert "pending: waiting for lock.yml" in plan.summary
    assert "pending" not in run.outputs["plan"]["matrix"].split('"waiting"')[0]
    assert sorted(leg.matrix.get("slug", "") for leg in run.legs_of("cell")) == [
        "fixture-linux-amd64",
        "fixture-linux-arm64",
    ]
    assert run.approvals == ["promote (fixture)"]
    host = org_registry.vars["AIBASE_REGISTRY"]
    with RegistryClient(host, credentials=_creds(org_registry)) as client:
        promoted = client.head_manifest(REPLAY_REPO, "fixture")
        assert promoted is not None
        assert client.head_manifest(REPLAY_REPO, "pending") is None

    again = replay.rerun(run, "promote")  # e.g. after its notification failed
    text = _show(again)
    assert again.results["promote"] == "success", text
    log = "\n".join(again.legs_of("promote")[0].log)
    assert "not written again" in log, text
    with RegistryClient(host, credentials=_creds(org_registry)) as client:
        assert client.head_manifest(REPLAY_REPO, "fixture") == promoted

    # Item 6: the gate asked again once that index is promoted (as for a schedule whose OS
    # packages did not change): nothing to promote, so no reviewer is asked and promote skips.
    approvals = list(run.approvals)
    again = replay.rerun(run, "gate")
    text = _show(again)
    assert again.results["gate"] == "success", text
    assert again.outputs["gate"]["promote"] == "false", text
    assert "| fixture | unchanged, not promoted:" in again.legs_of("gate")[0].summary, text
    again = replay.rerun(again, "promote")
    assert again.results["promote"] == "skipped" and again.approvals == approvals, _show(again)

    # The schedule's plan on the same commit: the same legs, with the OS refresh switched on
    # for the cells (test_job_graph builds a refreshed cell; a second full graph here would
    # add minutes of emulated apt to every CI run).
    schedule = replay.run(Event("schedule"), only=lambda job, _matrix: job == "plan")
    text = _show(schedule)
    assert schedule.results["plan"] == "success", text
    assert schedule.outputs["plan"]["matrix"] == run.outputs["plan"]["matrix"]
    assert re.search(
        r"refresh_os\s+true\s+\(AIBASE_REFRESH_OS\)", "\n".join(schedule.legs_of("plan")[0].log)
    ), text


def _creds(org: Org) -> Credentials:
    env = org.environments["publish"].secrets
    return Credentials(env["REGISTRY_USER"], env["REGISTRY_PASSWORD"])


def test_ci_yml_audit_tests_need_nothing_beside_the_checkout(tmp_path: Path) -> None:
    """Item 3: ci.yml runs the tests as `sudo --preserve-env=... bash .ci/run` in GitHub's
    checkout, which has no ../shared beside it. The audit tests (the only ones that read
    advisory data) run there with exactly the environment sudo passes on."""
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    job = workflow["jobs"]["test"]
    (command,) = [s["run"] for s in job["steps"] if "run" in s]
    kept = re.search(r"--preserve-env=(\S+)", command)
    assert kept and command.startswith("sudo "), command
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **host_network()}
    env |= {name: str(job["env"][name]) for name in kept.group(1).split(",") if name in job["env"]}
    checkout = _origin(tmp_path / "work" / "ai-base")
    assert not (checkout.parent / "shared").exists()
    run = run_pytest(
        "tests/integration/test_audit.py",
        # those that read the advisory data (the suite runs all of them)
        "-k",
        "advisories_come_with or committed_locks_against or vulnerable_lock_fails",
        cwd=checkout,
        env={**env, "PYTHONPATH": str(checkout / "src")},
    )
    assert run.returncode == 0, run.output[-3000:]
    assert run.ran == {"passed": 3} and run.outcomes["deselected"] > 0, run.outcomes
