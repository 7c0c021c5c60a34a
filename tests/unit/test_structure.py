"""The house's rules, held: files small enough to read, a run's object names in one module,
and an import graph without circles in which nothing imports a higher layer."""

import ast
import subprocess
from pathlib import Path

REPO = Path(__file__).parents[2]
# Lower layers first: a module may import its own layer and those before it.
LAYERS = ("shared", "functions", "jobs", "local", "bench")
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for top in LAYERS:
        for path in sorted((REPO / top).rglob("*.py")):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports, at the top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {name for name in out if name in known}


def test_no_file_in_shared_or_local_is_over_400_lines():
    tracked = subprocess.run(
        ["git", "ls-files", "shared", "local"], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    long = {
        name: n
        for name in tracked
        if name.endswith(".py") and (n := len((REPO / name).read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_a_runs_object_names_live_in_one_module():
    names = ("_plan.json", "_manifest.json", "_failed.json", "_chunks/", "_claims/", "_ready/")
    holders = {
        path.relative_to(REPO).as_posix()
        for folder in ("shared", "functions", "jobs", "local", "bench")
        for path in (REPO / folder).rglob("*.py")
        if any(name in path.read_text() for name in names)
    }
    assert holders == {"shared/fetch/layout.py"}


def test_nothing_imports_a_higher_layer_and_there_are_no_circles():
    known = modules()
    graph = {name: imports(path, known) for name, path in known.items()}
    upward = [
        f"{name} -> {target}"
        for name, targets in graph.items()
        for target in targets
        if LAYERS.index(target.split(".")[0]) > LAYERS.index(name.split(".")[0])
    ]
    assert upward == []

    # A package importing its own modules (re-exports) is not a circle.
    def edges(name):
        return {t for t in graph[name] if not t.startswith(f"{name}.")}

    state: dict[str, int] = {}
    circles = []

    def visit(name, path):
        state[name] = 1
        for target in edges(name):
            if state.get(target) == 1:
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])
    assert circles == []
