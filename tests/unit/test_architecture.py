"""The layering docs/architecture.md draws, checked from the source (AST, nothing imported).

The unit of layering is a package of src/aibase (config/, registry/, ...) or a top-level
module (errors, log, ...); ALLOWED says which units each may import. Module-level facts
(cycles, who runs docker, what is pure) are checked below it. scripts/architecture_map.py
reads the same source to generate the page's tables.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import REPO


def _load_map() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "architecture_map", REPO / "scripts" / "architecture_map.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAP = _load_map()
MODULES: dict[str, Path] = MAP.modules()

# Which units each unit may import: the layering. A new import across units either fits
# this table or changes it, here and on the unit's "May import:" line, on purpose.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "log": set(),
    "names": set(),
    "github": set(),
    "probe": set(),  # standard library only: it runs inside an image
    "state": {"errors"},
    "registry": {"errors", "log"},
    "config": {"errors", "registry"},
    "host": {"errors", "log", "probe", "config", "registry"},
    "audit": {"errors", "github", "log", "names", "config", "host", "registry"},
    "build": {"errors", "log", "names", "state", "audit", "config", "host", "registry"},
    "release": {
        *("errors", "github", "log", "names", "state"),
        *("audit", "build", "config", "host", "registry"),
    },
    "tools": {
        *("errors", "github", "log", "names", "state"),
        *("audit", "build", "config", "host", "registry", "release"),
    },
    "cli": {"errors", "github", "log", "config"},
    "__main__": {"cli"},
}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def forbidden(graph: dict[str, frozenset[str]], allowed: dict[str, set[str]]) -> list[str]:
    """Every import from one unit into another that the table does not allow."""
    unit = MAP.unit_of
    return sorted(
        f"{module} imports {target} ({unit(module)} may import {sorted(allowed[unit(module)])})"
        for module, targets in graph.items()
        for target in targets
        if unit(target) != unit(module) and unit(target) not in allowed[unit(module)]
    )


def cycle(graph: dict[str, set[str]] | dict[str, frozenset[str]]) -> list[str] | None:
    """One import cycle of the graph, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for nxt in sorted(graph.get(node, ())):
            found = visit(nxt, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    return next((c for c in (visit(n, []) for n in sorted(graph)) if c), None)


def test_the_table_names_every_package_and_top_level_module() -> None:
    assert set(ALLOWED) == set(MAP.units())
    for unit, allowed in ALLOWED.items():
        assert allowed <= set(ALLOWED), unit


def test_the_table_is_a_layering() -> None:
    assert cycle(ALLOWED) is None


def test_no_package_imports_one_it_may_not() -> None:
    assert forbidden(MAP.graph(), ALLOWED) == []


def test_the_layering_check_catches_a_forbidden_import() -> None:
    graph = dict(MAP.graph())
    before = set(forbidden(graph, ALLOWED))
    graph["registry.client"] = graph["registry.client"] | {"release.verify"}
    graph["host.engine"] = graph["host.engine"] | {"build.plan"}  # the edge this layout cut
    graph["tools.clean"] = graph["tools.clean"] | {"tools.bench", "release.report"}  # allowed
    assert set(forbidden(graph, ALLOWED)) - before == {
        "registry.client imports release.verify (registry may import ['errors', 'log'])",
        "host.engine imports build.plan (host may import "
        "['config', 'errors', 'log', 'probe', 'registry'])",
    }


@pytest.mark.parametrize("unit", sorted(ALLOWED))
def test_each_unit_says_what_it_owns_and_what_it_may_import(unit: str) -> None:
    text = MAP.docstring(unit)
    assert MAP.summary(unit), f"{unit}: no docstring"
    assert re.search(r"^May import: ", text, re.M), f"{unit}: no 'May import:' line"
    assert MAP.may_import(unit) == ALLOWED[unit]


def test_every_package_has_its_init() -> None:
    folders = {p.name for p in (REPO / "src" / "aibase").iterdir() if p.is_dir()}
    assert {f for f in folders if f != "__pycache__"} == set(MAP.packages())


def test_no_import_cycles() -> None:
    found = cycle(MAP.graph())
    assert found is None, "import cycle: " + " -> ".join(found or [])


def test_the_cycle_check_finds_one() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def _third_party(module: str) -> set[str]:
    return {m.split(".")[0] for m in MAP.imports(module)}


@pytest.mark.parametrize(
    ("library", "owners"),
    [
        ("docker", {"host.engine"}),  # the SDK
        ("httpx", {"registry.session"}),  # every HTTP call to a registry
        # credential helpers, the detached registry process, the probe inside an image
        ("subprocess", {"host.proc", "registry.credentials", "host.local_registry", "probe"}),
        ("invoke", {"cli"}),
    ],
)
def test_one_module_per_external_system(library: str, owners: set[str]) -> None:
    users = {name for name in MODULES if library in _third_party(name)}
    assert users == owners


def test_only_the_engine_runs_docker() -> None:
    runners = set()
    for name, path in MODULES.items():
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.List):
                first = node.args[0].elts[:1]
                if (
                    first
                    and isinstance(first[0], ast.Constant)
                    and first[0].value == "docker"
                    and ast.unparse(node.func) in ("proc.run", "subprocess.run")
                ):
                    runners.add(name)
    # the engine in three parts: itself (facts, containers, images), the builds it runs, and
    # a private one started for a run (rebuild-check's empty builder)
    assert runners == {"host.engine", "host.engine_build", "host.engine_private"}


PURE = (
    "build.plan",
    "build.layers",
    "build.lock_format",
    "config.model",
    "config.validate",
    "config.settings",
    "config.resolved",
    "config.precedence",
    "registry.refs",
    "registry.oci",
    "registry.trust",
    "host.buildlog",
    "host.buildx",
    "audit.allowlist",
    "audit.contents",
    "audit.sbom",
    "audit.provenance",
    "tools.imagesize",
    "tools.bench_checks",
    "tools.bench_report",
    "release.report",
    "release.promote_gate",
    "state",
    "names",
)


@pytest.mark.parametrize("module", PURE)
def test_the_pure_modules_talk_to_nothing(module: str) -> None:
    """No docker, no HTTP, no process through anything they import."""
    assert MAP.talks_to(module) == []


def test_verify_and_promote_use_the_registry_but_never_the_engine() -> None:
    for module in ("release.verify", "release.promote"):
        assert "registry.client" in MAP.reach(module)
        assert "host.engine" not in MAP.reach(module), module


def test_the_probe_is_standard_library_only() -> None:
    assert not {m for m in MAP.imports("probe") if m.startswith("aibase")}
    assert _third_party("probe") <= {
        "__future__",
        "importlib",
        "json",
        "os",
        "pathlib",
        "platform",
        "subprocess",
        "sys",
        "time",
        "typing",
        "torch",
    }


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name: str) -> None:
    assert len(MODULES[name].read_text().splitlines()) <= 300


def test_tasks_are_thin() -> None:
    tree = _tree(REPO / "tasks.py")
    # a task is its flags and one call; the formatter lays the flags out one a line
    assert len((REPO / "tasks.py").read_text().splitlines()) <= 275
    for fn in [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.decorator_list]:
        body = [
            s
            for s in fn.body
            if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
        ]
        assert len(body) <= 3, f"task {fn.name} has {len(body)} statements: move logic to aibase"


def test_environment_is_read_in_one_place() -> None:
    readers = set()
    for name, path in MODULES.items():
        text = path.read_text()
        if "os.environ" in text or "getenv" in text:
            readers.add(name)
    # settings resolves AIBASE_*; the others read variables of other programs:
    # DOCKER_CONFIG (credentials), GITHUB_* (github), the image's own (probe); proc passes
    # its own on to a child with a few set on top (a private engine's DOCKER_HOST)
    assert readers == {"config.settings", "registry.credentials", "github", "probe", "host.proc"}


def test_git_and_ruff_see_every_package() -> None:
    """.gitignore's `build/` (the output folder) would hide the build package from git and
    from ruff, which honours .gitignore: it must be re-included."""
    lines = (REPO / ".gitignore").read_text().splitlines()
    for package in MAP.packages():
        if f"{package}/" in lines:
            assert f"!/src/aibase/{package}/" in lines[lines.index(f"{package}/") :], package


DOC = REPO / "docs" / "architecture.md"


def test_the_page_map_is_generated_from_the_source() -> None:
    page = DOC.read_text()
    assert MAP.updated(page) == page, "docs/architecture.md is stale: run the script it names"
    assert MAP.main(["--check"]) == 0


def test_the_script_rewrites_a_stale_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the page tells a reader to run after a change: --check fails, a run rewrites."""
    page = DOC.read_text()
    stale = tmp_path / "architecture.md"
    stale.write_text(page.replace("| `release.verify` |", "| `verify.py` |", 1))
    monkeypatch.setattr(MAP, "DOC", stale)
    monkeypatch.setattr(MAP, "REPO", tmp_path)
    assert MAP.main(["--check"]) == 1
    assert MAP.main([]) == 0
    assert stale.read_text() == page


def _defined(module: str) -> set[str]:
    names = set()
    for node in _tree(MODULES[module]).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def named_in_prose(text: str) -> list[str]:
    """What the prose names that is not there: `package.module[.name]` spans whose module,
    or whose module-level name, does not exist."""
    missing = []
    units = "|".join(MAP.units())
    for ref in re.findall(rf"`((?:{units})(?:\.\w+)*)`", text):
        known = [m for m in [*MODULES, *MAP.packages()] if f"{ref}.".startswith(f"{m}.")]
        module = max(known, key=len, default=None)
        rest = ref.removeprefix(module or "").lstrip(".")
        if module is None or (rest and (module not in MODULES or rest not in _defined(module))):
            missing.append(ref)
    return missing


def test_the_page_prose_names_what_exists() -> None:
    prose = re.sub(
        rf"{re.escape(MAP.BEGIN)}.*{re.escape(MAP.END)}", "", DOC.read_text(), flags=re.S
    )
    assert named_in_prose(prose) == []
    assert named_in_prose("`registry.client` `release.pipeline.promote_checked` `cli`") == []
    # what the old page claimed: a module that is gone, a function that never was
    assert named_in_prose("`build.steps` `build.plan.imagetools_argv`") == [
        "build.steps",
        "build.plan.imagetools_argv",
    ]


SOURCE_PATH = re.compile(r"src/aibase/[\w/]+\.py")


@pytest.mark.parametrize(
    "page",
    [
        REPO / "README.md",
        *sorted((REPO / "docs").glob("*.md")),
        *sorted(REPO.glob("docker/Dockerfile.*")),
    ],
    ids=lambda p: p.name,
)
def test_source_paths_the_docs_quote_exist(page: Path) -> None:
    for path in SOURCE_PATH.findall(page.read_text()):
        assert (REPO / path).is_file(), f"{page.name} names {path}, which is not there"


def test_each_task_says_what_it_does_in_one_sentence_first() -> None:
    """`./ai --list` shows each task's first docstring line: a cut one reads as a fragment
    (tests/integration/test_help.py checks the printed list; this one runs with the units)."""
    tree = _tree(REPO / "tasks.py")
    for fn in [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.decorator_list]:
        first = (ast.get_docstring(fn) or "").splitlines()[0]
        assert first.endswith("."), f"{fn.name}: --list shows a cut sentence: {first!r}"
