"""No import circle between Concord's modules.

A service that imports its tasks module, which imports the service back, works only as long as one
of the two imports stays inside a function; the next engineer to move it up breaks start-up. So
services queue work by task name (config/queueing.py) and this test reads every import of the
project's packages, inside functions too, and fails on any circle. No database, no Django: the
graph comes from the source (ast), so a module that is never imported in a test is still checked.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "annotation", "active_learning", "training", "frontend", "deployment")


def project_modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """{dotted module name: file} of the packages' modules, migrations left out."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")) if (root / package).is_dir() else []:
            parts = path.relative_to(root).with_suffix("").parts
            if "migrations" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """{module: the project modules it imports}, at module level or inside functions alike."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(name, is_package, node)
                # `from training import services` imports the module training.services.
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
            for target in targets:
                while target and target not in modules:  # `import a.b.c` of a name inside a module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_project_has_no_import_circle():
    modules = project_modules(ROOT)
    assert "training.services" in modules and "annotation.tasks" in modules  # the walk found the apps
    assert cycles(import_graph(modules)) == []


def test_tasks_import_services_and_services_never_import_tasks():
    graph = import_graph(project_modules(ROOT))
    assert "training.runs" in graph["training.tasks"]
    assert "annotation.services.quality" in graph["annotation.tasks"]
    for module, imported in graph.items():
        if module.endswith("tasks"):
            continue
        assert not {m for m in imported if m.endswith(".tasks")}, f"{module} imports a tasks module"


def test_the_walk_finds_a_circle_through_an_import_inside_a_function(tmp_path):
    app = tmp_path / "app"
    (app / "services").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "services" / "__init__.py").write_text("")
    (app / "services" / "work.py").write_text("def queue():\n    from ..tasks import run\n    run()\n")
    (app / "tasks.py").write_text("from app.services import work\n")
    (app / "alone.py").write_text("import app.tasks\n")
    graph = import_graph(project_modules(tmp_path, packages=("app",)))
    assert graph["app.services.work"] == {"app.tasks"}
    assert graph["app.alone"] == {"app.tasks"}
    assert cycles(graph) == [["app.services.work", "app.tasks"]]
