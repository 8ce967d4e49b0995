"""The import layers of docs/architecture.md: a lower layer never imports a higher one, and no module
import cycles. Read from the source (AST), so lazy imports inside functions count too; imports under
``if TYPE_CHECKING:`` (annotations only, never executed) do not."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "xgamma"
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def _layers() -> dict[str, int]:
    """``{top-level name: layer number}`` from the numbered list under "## Import layers"."""
    text = ARCHITECTURE.read_text()
    section = text.split("## Import layers", 1)[1].split("\n## ", 1)[0]
    layers = {}
    for number, names in re.findall(r"^(\d+)\. (.+)$", section, flags=re.MULTILINE):
        for name in re.findall(r"`([\w.]+)`", names.split(":")[0]):
            layers[name] = int(number)
    assert layers, "no numbered layer list under '## Import layers' in docs/architecture.md"
    return layers


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, modules: dict[str, Path], root: Path = ROOT) -> set[str]:
    """xgamma modules imported by the file at ``path`` (outside ``if TYPE_CHECKING:`` blocks)."""
    found: set[str] = set()
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            found.add(base)
            # ``from xgamma.plugin import spec`` imports the submodule xgamma.plugin.spec.
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return {module for module in found if module in modules and module != name}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "xgamma"


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def test_every_module_has_a_layer(graph):
    layers = _layers()
    missing = sorted({_top(module) for module in graph} - set(layers))
    assert not missing, f"add these xgamma modules to '## Import layers' in docs/architecture.md: {missing}"


def test_no_lower_layer_imports_a_higher_one(graph):
    layers = _layers()
    upward = [f"{module} (layer {layers[_top(module)]}) imports {target} (layer {layers[_top(target)]})"
              for module, targets in sorted(graph.items()) for target in sorted(targets)
              if layers.get(_top(target), 0) > layers.get(_top(module), 0)]
    assert not upward, "imports against the layers of docs/architecture.md:\n" + "\n".join(upward)


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph ``edges`` (a list of nodes, first == last), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def _without_own_package(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Drop the edges from a package's ``__init__`` to its own submodules (it re-exports them)."""
    return {module: {t for t in targets if not t.startswith(module + ".")} for module, targets in graph.items()}


def test_no_import_cycles_between_modules(graph):
    cycle = _cycle(_without_own_package(graph))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_cycles_between_packages(graph):
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        packages.setdefault(_top(module), set()).update(_top(t) for t in targets if _top(t) != _top(module))
    packages.pop("xgamma", None)  # the package root re-exports; nothing below may import it
    cycle = _cycle(packages)
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle)


def test_the_check_finds_what_it_is_meant_to_find(tmp_path):
    """The AST reader sees lazy imports and submodule imports, and skips TYPE_CHECKING blocks."""
    source = tmp_path / "xgamma" / "io" / "sample.py"
    source.parent.mkdir(parents=True)
    source.write_text(
        "from typing import TYPE_CHECKING\nfrom xgamma.plugin import spec\n"
        "if TYPE_CHECKING:\n    from xgamma.workflow import Analysis\n"
        "def f():\n    from xgamma.fit.fitter import fit\n    import xgamma.maps\n")
    modules = {"xgamma.plugin": None, "xgamma.plugin.spec": None, "xgamma.workflow": None,
               "xgamma.fit.fitter": None, "xgamma.maps": None, "xgamma.io.sample": None}
    found = _imports(source, modules, root=tmp_path)
    assert found == {"xgamma.plugin", "xgamma.plugin.spec", "xgamma.fit.fitter", "xgamma.maps"}
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None
