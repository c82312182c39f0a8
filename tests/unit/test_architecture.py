"""The shape docs/architecture.md draws, checked from the source (AST, nothing imported)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import REPO

SRC = REPO / "src" / "aibase"
MODULES = {p.stem: p for p in sorted(SRC.glob("*.py")) if p.stem != "__init__"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _imports(path: Path) -> set[str]:
    """Every module named by an import anywhere in the file (function-level ones too)."""
    found: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "aibase":
                found |= {f"aibase.{a.name}" for a in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    return {
        name: {m.split(".")[1] for m in _imports(path) if m.startswith("aibase.")} - {name}
        for name, path in MODULES.items()
    }


def test_no_import_cycles() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*path, node])
        done.add(node)

    for name in graph:
        visit(name, [])


def _reach(start: str) -> set[str]:
    graph, seen, todo = _graph(), set(), [start]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo += graph.get(node, ())
    return seen


def _third_party(module: str) -> set[str]:
    return {m.split(".")[0] for m in _imports(MODULES[module])}


@pytest.mark.parametrize(
    ("library", "owners"),
    [
        ("docker", {"engine"}),  # the SDK
        ("httpx", {"registry"}),  # every HTTP call to a registry
        ("subprocess", {"proc", "credentials", "localregistry", "probe"}),
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
    assert runners == {"engine"}


def test_the_report_and_the_pure_modules_never_reach_the_engine() -> None:
    for pure in ("report", "plan", "verify", "config", "refs", "settings", "state", "promote"):
        assert "engine" not in _reach(pure), pure


def test_the_probe_is_standard_library_only() -> None:
    assert not {m for m in _imports(MODULES["probe"]) if m.startswith("aibase")}
    assert _third_party("probe") <= {
        "__future__",
        "glob",
        "importlib",
        "json",
        "os",
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
    assert len((REPO / "tasks.py").read_text().splitlines()) <= 250
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
    # DOCKER_CONFIG (credentials), GITHUB_* (github), the image's own (probe)
    assert readers == {"settings", "credentials", "github", "probe"}


def test_the_module_map_names_every_module_and_its_imports() -> None:
    """docs/architecture.md stays true: one row per module, with what it imports."""
    text = (REPO / "docs" / "architecture.md").read_text()
    rows = {}
    for line in text.splitlines():
        if line.startswith("| `") and ".py` |" in line:
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].strip("`").removesuffix(".py")] = cells[2]
    assert set(rows) == set(MODULES)
    for name, imports in _graph().items():
        listed = set() if rows[name] == "—" else {m.strip() for m in rows[name].split(",")}
        assert listed == imports, name
