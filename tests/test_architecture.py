"""The layer order of docs/architecture.md, enforced: no import runs up a layer, no module cycle.

Every ``import`` counts, including those inside functions: a lazy import that reaches up a layer
is still a dependency, only a hidden one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "anomalygraph"

LAYERS: tuple[str, ...] = (
    "core", "prompts", "data", "metrics", "detectors", "rulebank", "plots",
    "llm", "tools", "agents", "graphs", "streaming", "evals", "ui", "cli",
)
"""Bottom to top, as in docs/architecture.md; a module may import its own layer and those below."""


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = ("anomalygraph", *path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = PACKAGE) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import of the package in ``path``, relative ones resolved."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            # ``from anomalygraph.x import y`` may name a submodule y
            found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
    return [(t, line) for t, line in found if t == "anomalygraph" or t.startswith("anomalygraph.")]


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def upward_imports(root: Path = PACKAGE) -> list[str]:
    problems: dict[tuple[str, int], str] = {}
    for path in sorted(root.rglob("*.py")):
        here = layer_of(module_name(path, root))
        if here is None:
            continue
        for target, line in imports_of(path, root):
            there = layer_of(target)
            where = (str(path.relative_to(root)), line)
            if there is not None and LAYERS.index(there) > LAYERS.index(here) and where not in problems:
                problems[where] = f"{where[0]}:{line}: {here} imports {target} ({there} is above {here})"
    return sorted(problems.values())


def module_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target, _ in imports_of(path, root):
            if target in modules and target != name and not name.startswith(target + "."):
                # importing a package runs its __init__, but a package's own __init__ importing
                # its children is how packages are built, not a cycle
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
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


def test_every_subpackage_has_a_layer():
    tops = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    tops |= {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert tops <= set(LAYERS), f"not placed in a layer (add to LAYERS and docs/architecture.md): {sorted(tops - set(LAYERS))}"


def test_no_upward_import():
    problems = upward_imports()
    assert not problems, "imports that run up the layers:\n" + "\n".join(problems)


def test_no_import_cycle():
    found = cycles(module_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_layers_match_the_document():
    doc = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    order = [line.split("`")[1] for line in doc.splitlines() if line.startswith("| ") and line.count("`") >= 2 and line.split("`")[1] in LAYERS]
    assert tuple(order) == LAYERS


def test_the_check_catches_an_upward_import(tmp_path):
    """The checks themselves can fail: a data module importing graphs, and a two-module cycle."""
    pkg = tmp_path / "anomalygraph"
    for sub in ("data", "graphs"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "a.py").write_text("def f():\n    from anomalygraph.graphs import b\n")
    (pkg / "graphs" / "b.py").write_text("from ..data import a\n")
    assert upward_imports(pkg) == ["data/a.py:2: data imports anomalygraph.graphs (graphs is above data)"]
    assert cycles(module_graph(pkg)) == [["anomalygraph.data.a", "anomalygraph.graphs.b"]]


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_is_not_an_empty_placeholder(layer):
    path = PACKAGE / layer
    files = list(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
    code = [f for f in files if any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) for n in ast.parse(f.read_text()).body)]
    assert code, f"{layer} defines no function or class: an empty placeholder"
