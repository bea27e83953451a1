"""No import circles inside brainprobe, not even ones hidden by importing inside a function.

The scan reads every module's source (AST) and draws an edge A -> B for each ``import`` /
``from ... import`` of a brainprobe module B in module A: at the top of the file *and* inside
functions. The graph must have no cycle. So an import inside a function is fine for what it is
meant for -- keeping ``brainprobe --help`` and ``import brainprobe`` fast (cli.py imports the
subpackages when a subcommand runs; torch, matplotlib, nibabel and the optional dependencies
are imported where they are needed) -- but never to dodge a circle: moved to the top of its
file, every import would still work. Third-party imports cannot close a circle and are not
part of the graph.
"""

import ast
import functools
from pathlib import Path

import brainprobe

PACKAGE = Path(brainprobe.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _targets(module: str, node: ast.AST) -> list[str]:
    """The brainprobe modules an import statement of ``module`` loads (its package for a name)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in MODULES]
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.split(".")
        if MODULES[module].name != "__init__.py":
            parts = parts[:-1]
        parts = parts[:len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    found = []
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        found.append(submodule if submodule in MODULES else base)
    return [target for target in found if target in MODULES]


def _imports(node: ast.AST, in_function: bool = False):
    """Every import statement under ``node``, with whether it sits inside a function."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, in_function
        else:
            yield from _imports(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))


@functools.cache
def import_graph() -> dict[str, dict[str, tuple[int, bool]]]:
    """``{module: {imported module: (line, inside a function)}}`` over brainprobe's own modules."""
    graph = {}
    for module, path in MODULES.items():
        edges = {}
        for node, in_function in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _targets(module, node):
                edges.setdefault(target, (node.lineno, in_function))
        graph[module] = edges
    return graph


def find_cycle(graph) -> list[str] | None:
    """One cycle of the directed graph as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for target in graph.get(node, ()):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_scan_sees_the_package_and_its_lazy_imports():
    graph = import_graph()
    assert len(MODULES) > 40 and "brainprobe.pipeline._study" in graph
    # cli.py imports the pipeline inside a function (for the speed of `brainprobe --help`): seen
    assert graph["brainprobe.cli"]["brainprobe.pipeline"][1] is True
    assert "brainprobe.stimuli._stimulus_set" in graph["brainprobe.stimuli._io"]


def test_the_scan_finds_a_circle_hidden_inside_a_function():
    source = {"a": {"b": (1, False)}, "b": {"c": (1, False)}, "c": {"a": (9, True)}}
    assert find_cycle(source) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": (1, False)}, "b": {}}) is None


def test_no_module_imports_another_in_a_circle():
    graph = import_graph()
    cycle = find_cycle(graph)
    if cycle:
        steps = [f"{a} line {graph[a][b][0]}{' (inside a function)' if graph[a][b][1] else ''} imports {b}"
                 for a, b in zip(cycle[:-1], cycle[1:], strict=True)]
        raise AssertionError("import circle:\n  " + "\n  ".join(steps))
