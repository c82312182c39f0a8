"""The GitHub workflows, read as data: the matrix comes from `invoke matrix`, every step that
does work is one invoke or nox command, promote waits for every check and is guarded, no
secret reaches a shell, every action is pinned by commit."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aibase.config.loader import load_config
from aibase.errors import ConfigError, LockError
from aibase.release.matrix import emit, parse_runners, plan_matrix, plan_ready, render_plan
from tests.replay.expressions import job_runs

from .conftest import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
# the tools pinned by requirements-dev.txt (Dependabot bumps it)
SETUP_RUNS = {
    "python -m pip install -e . -c requirements-dev.txt",
    "python -m pip install -e .[dev] -c requirements-dev.txt",
}
# a workflow command writes an annotation on the run's page: no work
ANNOTATION = r'^echo "::(notice|warning|error) title=[^:]+::[^"$`]+"$'


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def _steps(wf: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for name, job in wf["jobs"].items():
        for step in job.get("steps", []):
            yield name, job, step


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_run_is_one_invoke_or_nox_command(path: Path) -> None:
    for job, _, step in _steps(_load(path)):
        run = step.get("run")
        if run is None:
            continue
        assert "\n" not in run.strip(), (job, run)
        work = re.match(r"^(sudo [^ ]+ )?(invoke|nox|bash \.ci/run)\b", run)
        assert run in SETUP_RUNS or work or re.match(ANNOTATION, run.strip()), (job, run)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_secret_or_expression_inside_a_run(path: Path) -> None:
    for job, _, step in _steps(_load(path)):
        assert "${{" not in step.get("run", ""), (job, step["run"])  # via env: only


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_with_their_version(path: Path) -> None:
    text = path.read_text()
    for line in text.splitlines():
        if "uses:" in line:
            assert re.search(r"uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege_and_no_persisted_credentials(path: Path) -> None:
    wf = _load(path)
    assert wf["permissions"] == {}  # nothing by default; each job asks for its own
    for name, job in wf["jobs"].items():
        assert "permissions" in job, name
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, name
            if step.get("uses", "").startswith("actions/upload-artifact@"):
                assert step["with"]["if-no-files-found"] == "error", name


def test_the_build_matrix_comes_from_invoke_matrix() -> None:
    wf = _load(REPO / ".github" / "workflows" / "build.yml")
    plan_steps = [s.get("run", "") for s in wf["jobs"]["plan"]["steps"]]
    assert any(r.startswith("invoke matrix --ci") for r in plan_steps)
    for name, job in wf["jobs"].items():
        matrix = job.get("strategy", {}).get("matrix")
        if matrix is not None:
            assert set(matrix) == {"include"}, name
            source = "gate.outputs.variants)" if name == "promote" else "plan.outputs.matrix)."
            assert matrix["include"].startswith(f"${{{{ fromJSON(needs.{source}"), name
            assert job["strategy"]["fail-fast"] is False, name
    gate = [s["run"] for s in wf["jobs"]["gate"]["steps"] if "run" in s]
    assert gate[-1] == 'invoke matrix --gate --variant "$VARIANT"'


def _runs(job: dict[str, Any], event: str, ref: str, needs: dict[str, Any]) -> bool:
    """The job's `if`, evaluated as GitHub does for this event and these needs' results."""
    context = {
        "github": {"event_name": event, "ref": ref},
        "needs": needs,
        "matrix": {},
        "vars": {},
        "inputs": {},
    }
    results = [n["result"] for n in needs.values()]
    return job_runs(str(job.get("if", "success()")), context, results)


MAIN = ("push", "refs/heads/main")
PULL_REQUEST = ("pull_request", "refs/pull/1/merge")
# every job that pushes, tags or asks for the registry's secrets
WRITERS = ("cell", "merge", "smoke", "smoke-gpu", "gate")


@pytest.mark.parametrize("name", WRITERS)
def test_a_pull_request_writes_nothing_and_a_push_to_main_does(name: str) -> None:
    """The guards, evaluated: an inverted one (`== 'pull_request'`) fails both asserts."""
    wf = _load(REPO / ".github" / "workflows" / "build.yml")
    job = wf["jobs"][name]
    matrix = '{"gpu": [{"slug": "cuda-linux-amd64"}]}'  # a plan with a GPU leg
    ok = {"result": "success", "outputs": {"build": "true", "matrix": matrix}}
    needs = {n: ok for n in ([job["needs"]] if isinstance(job["needs"], str) else job["needs"])}
    assert _runs(job, *MAIN, needs)
    assert not _runs(job, *PULL_REQUEST, needs)


def test_promote_waits_for_every_check_and_is_guarded() -> None:
    wf = _load(REPO / ".github" / "workflows" / "build.yml")
    promote, gate = wf["jobs"]["promote"], wf["jobs"]["gate"]
    assert set(gate["needs"]) >= {"plan", "merge", "smoke", "smoke-gpu"}
    assert set(promote["needs"]) >= {"gate"}
    assert "invoke verify" in str(wf["jobs"]["merge"]["steps"])  # verify runs in merge
    assert promote["environment"] == "production"
    assert promote["concurrency"]["cancel-in-progress"] is False
    assert promote["concurrency"]["group"] == "promote-${{ matrix.name }}"
    ok = {"result": "success", "outputs": {"build": "true", "matrix": "{}"}}
    needs = {n: ok for n in gate["needs"]}
    main = MAIN
    assert _runs(gate, *main, needs)
    assert not _runs(gate, *PULL_REQUEST, needs)
    assert not _runs(gate, "push", "refs/heads/topic", needs)
    assert not _runs(gate, "workflow_dispatch", "refs/heads/topic", needs)
    failed_plan = {**needs, "plan": {"result": "failure", "outputs": {}}}
    assert not _runs(gate, *main, failed_plan)
    # a failed smoke leg does not stop the gate: it holds that variant back, not the others
    assert _runs(gate, *main, {**needs, "smoke": {"result": "failure", "outputs": {}}})
    passed = {"result": "success", "outputs": {"promote": "true"}}
    assert _runs(promote, *main, {"plan": ok, "gate": passed})
    held = {"result": "success", "outputs": {"promote": "false"}}
    assert not _runs(promote, *main, {"plan": ok, "gate": held})
    assert not _runs(promote, *main, {"plan": ok, "gate": {"result": "skipped", "outputs": {}}})
    assert promote["steps"][0]["with"]["fetch-depth"] == 0  # history: no moving back
    gpu = wf["jobs"]["smoke-gpu"]
    assert gpu["env"]["AIBASE_REQUIRE_GPU"] == "1"


def test_cells_run_natively_and_emulate_only_where_asked() -> None:
    wf = _load(REPO / ".github" / "workflows" / "build.yml")
    cell = wf["jobs"]["cell"]
    assert cell["runs-on"] == "${{ matrix.runner }}"
    qemu = [s for s in cell["steps"] if "setup-qemu-action" in s.get("uses", "")]
    assert len(qemu) == 1 and qemu[0]["if"] == "matrix.emulated"


def test_matrix_from_images_toml() -> None:
    cfg = load_config(REPO / "images.toml", env={})
    runners = parse_runners("linux/amd64=ubuntu-24.04,linux/arm64=ubuntu-24.04-arm")
    m = plan_matrix(cfg, runners, "gpu-a100")
    assert [(c["slug"], c["runner"], c["emulated"]) for c in m["cells"]] == [
        ("cpu-linux-amd64", "ubuntu-24.04", False),
        ("cpu-linux-arm64", "ubuntu-24.04-arm", False),
        ("cuda-linux-amd64", "ubuntu-24.04", False),
        ("cuda-linux-arm64", "ubuntu-24.04-arm", False),
    ]
    assert [(g["slug"], g["runner"]) for g in m["gpu"]] == [("cuda-linux-amd64", "gpu-a100")]
    assert m["variants"] == [
        {"name": "cpu", "require_gpu": False},
        {"name": "cuda", "require_gpu": True},
    ]
    one_runner = plan_matrix(cfg, {"linux/amd64": "x", "linux/arm64": "x"}, "none")
    assert one_runner["gpu"] == [] and one_runner["cells"][1]["emulated"] is True


def test_the_plan_reads_as_text_and_a_job_without_a_runner_is_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`invoke matrix` outside --ci with no GPU runner: readable lines, no Python reprs, and a
    warning for the GPU smoke nobody would run."""
    cfg = load_config(REPO / "images.toml", env={})
    runners = parse_runners("linux/amd64=ubuntu-24.04,linux/arm64=ubuntu-24.04-arm")
    matrix, waiting = plan_ready(cfg, runners, "", ci=False)
    emit(matrix, as_json=False, waiting=waiting)
    out, err = capsys.readouterr()
    assert "{" not in out and "'runner'" not in out
    assert "  cuda       linux/arm64  runner ubuntu-24.04-arm" in out.splitlines()
    assert "waiting for a lock: cpu (cpu/linux/amd64)" in out
    assert "cuda/linux/amd64: the GPU smoke has no runner" in err
    emit(plan_ready(cfg, runners, "gpu-a100", ci=False)[0], as_json=False)
    out, err = capsys.readouterr()
    assert "runner gpu-a100" in out and "no runner" not in out + err


@pytest.mark.parametrize(
    ("registry", "gpu", "problem"),
    [
        ("localhost:5000", "gpu", "CI jobs run on separate machines"),
        ("registry.example.com", "", "no GPU runner is named"),
    ],
)
def test_the_plan_fails_with_the_fix(registry: str, gpu: str, problem: str) -> None:
    cfg = load_config(REPO / "images.toml", env={"AIBASE_REGISTRY": registry})
    runners = parse_runners("linux/amd64=a,linux/arm64=b-arm")
    with pytest.raises(ConfigError) as info:
        plan_matrix(cfg, runners, gpu, ci=True)
    assert problem in info.value.render()


def test_a_variant_without_its_lock_waits_and_the_others_are_planned() -> None:
    """cpu/linux/amd64's lock is not committed (the known gap): cpu waits, cuda is planned,
    the summary says which and what to do; asked for by name, cpu is an error."""
    cfg = load_config(REPO / "images.toml", env={"AIBASE_REGISTRY": "registry.example.com"})
    runners = parse_runners("linux/amd64=ubuntu-24.04,linux/arm64=ubuntu-24.04-arm")
    matrix, waiting = plan_ready(cfg, runners, "none", ci=True)
    assert {c["variant"] for c in matrix["cells"]} == {"cuda"}
    assert matrix["waiting"] == [{"name": "cpu", "missing": ["cpu/linux/amd64"]}]
    assert "**cpu: waiting for lock.yml**" in render_plan(matrix, waiting)
    assert "lock workflow" in render_plan(matrix, waiting)
    with pytest.raises(LockError, match="cpu waits for its lock"):
        plan_ready(cfg, runners, "none", ci=True, variant="cpu")
    assert plan_ready(cfg, runners, "none", ci=True, variant="cuda")[1] == []


def test_a_stale_lock_is_an_error_not_a_wait(tmp_path: Path) -> None:
    cfg = load_config(REPO / "images.toml", env={"AIBASE_REGISTRY": "registry.example.com"})
    lock_dir = tmp_path / "locks"
    lock_dir.mkdir()
    for f in cfg.variant("cuda").lock_file("linux/amd64").parent.glob("cuda-*.txt"):
        (lock_dir / f.name).write_text(
            f.read_text().replace("# inputs-sha256: ", "# inputs-sha256: 0")
        )
    text = (
        (REPO / "images.toml")
        .read_text()
        .replace(
            'requirements = ["requirements/common.in"]\ntorch = { torch = "2.4.1", torchvision = "0.19.1", torchaudio = "2.4.1" }\n\n[variants.cuda.platforms',
            'requirements = ["requirements/common.in"]\ntorch = { torch = "2.4.1", torchvision = "0.19.1", torchaudio = "2.4.1" }\n'
            f'lock_dir = "{lock_dir}"\n\n[variants.cuda.platforms',
        )
    )
    assert f'lock_dir = "{lock_dir}"' in text
    (tmp_path / "requirements").symlink_to(REPO / "requirements")
    (tmp_path / "docker").symlink_to(REPO / "docker")
    (tmp_path / "images.toml").write_text(text)
    stale = load_config(tmp_path / "images.toml", env={})
    with pytest.raises(LockError, match="lock cuda/linux/amd64: stale"):
        plan_ready(stale, parse_runners("linux/amd64=a,linux/arm64=b-arm"), "none", ci=False)


def test_a_pull_request_reviews_its_lock_changes_with_the_base_in_its_clone() -> None:
    """build.yml's review job: pull requests only, reads nothing but the checkout, whose two
    commits hold the base (a merge commit's first parent) that `audit --base` diffs against."""
    wf = _load(REPO / ".github" / "workflows" / "build.yml")
    job = wf["jobs"]["review"]
    assert _runs(job, *PULL_REQUEST, {}) and not _runs(job, *MAIN, {})
    assert "needs" not in job and "environment" not in job  # no plan, no secret needed
    assert job["permissions"] == {"contents": "read"}
    checkout = job["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"]["fetch-depth"] == 2
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert runs[-1] == "invoke audit --base HEAD^1"
    assert job["env"]["AIBASE_AUDIT_SERVICE"] == "osv"  # named: nothing is contacted by default
    triggers = yaml.safe_load((REPO / ".github" / "workflows" / "build.yml").read_text())[True]
    assert "requirements/**" in triggers["pull_request"]["paths"]


def test_a_new_runner_restores_the_stand_in_root_filesystems_from_the_cache() -> None:
    """The stand-ins' rootfs tarballs (minutes of debootstrap, arm64 under QEMU) come back
    from actions/cache on a new runner: the cache's path is the rootfs folder of the host
    cache .ci/run really uses (AIBASE_CACHE, kept through sudo), keyed by standins.py."""
    job = _load(REPO / ".github" / "workflows" / "ci.yml")["jobs"]["test"]
    cached = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/cache@")]
    assert len(cached) == 1
    (step,) = [s for s in job["steps"] if "run" in s]
    run, cache_dir = step["run"], step["env"]["AIBASE_CACHE"]
    assert cached[0]["with"]["path"] == f"{cache_dir}/rootfs"  # Paths.rootfs: <cache>/rootfs
    assert "hashFiles('src/aibase/host/standins.py')" in cached[0]["with"]["key"]
    kept = re.search(r"--preserve-env=(\S+)", run)
    assert kept and "AIBASE_CACHE" in kept.group(1).split(","), run
    first_run = next(i for i, s in enumerate(job["steps"]) if "run" in s)
    assert job["steps"].index(cached[0]) < first_run  # restored before .ci/run needs it
