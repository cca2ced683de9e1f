"""The import graph, read from the source with `ast`: no cycle between the copilot modules or their packages,
and dependencies point one way (the tests may use copilot; the benchmarks may use both; copilot uses neither).

Every import counts, at the top of a module or inside a function: a lazy import hides a cycle, it does not break
it. The one exception is the block under `if __name__ == "__main__":`, which `python -m` runs as the module
`__main__`, not as the module itself; its imports belong to a node of their own ("copilot.index:__main__").
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A path under tests/, written as a string ("tests/data/x") or as a part of one (ROOT / "tests" / ...).
TESTS_PATH = re.compile(r"""\btests/|["']tests["']""")


def module_names(package: Path) -> dict[str, Path]:
    """Every module under a package folder by dotted name (a package by its folder's name)."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def is_main_guard(node: ast.stmt) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


def imported(name: str, path: Path, tree: ast.AST) -> list[tuple[str, str | None]]:
    """What one module (or block) imports, as (module, name) with relative imports resolved: `from a import b` is
    ("a", "b"), `import a.b` is ("a.b", None)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found += [(base, alias.name) for alias in node.names]
    return found


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (`from a import b` is a.b when that is a module)."""
    modules = module_names(package)

    def resolve(module: str, attribute: str | None) -> str | None:
        if attribute and f"{module}.{attribute}" in modules:
            return f"{module}.{attribute}"
        while module and module not in modules:
            module = module.rpartition(".")[0]
        return module or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        script = [node for node in tree.body if is_main_guard(node)]
        tree.body = [node for node in tree.body if not is_main_guard(node)]
        blocks = [(name, tree)] + ([(f"{name}:__main__", ast.Module(script, []))] if script else [])
        for node_name, block in blocks:
            targets = {resolve(module, attribute) for module, attribute in imported(name, path, block)}
            graph[node_name] = {t for t in targets if t is not None and t != name}
    return graph


def package_graph(graph: dict[str, set[str]], root: str) -> dict[str, set[str]]:
    """The same graph with each subpackage of root as one node (root's own modules stay themselves)."""
    packages = {name.rpartition(".")[0] for name in graph if ":" not in name}

    def node(name: str) -> str:
        head = ".".join(name.split(".")[:2])
        return head if ":" not in name and head != root and head in packages else name

    collapsed: dict[str, set[str]] = {}
    for name, targets in graph.items():
        collapsed.setdefault(node(name), set()).update(node(t) for t in targets if node(t) != node(name))
    return collapsed


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle as a path that ends where it starts, or [] when there is none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> list[str]:
        if name in path:
            return [*path[path.index(name):], name]
        if name in done:
            return []
        path.append(name)
        for target in sorted(graph.get(name, ())):
            if cycle := visit(target):
                return cycle
        path.pop()
        done.add(name)
        return []

    for name in sorted(graph):
        if cycle := visit(name):
            return cycle
    return []


def top_level_imports(folder: Path) -> dict[str, set[str]]:
    """File -> the top-level names it imports (absolute imports only: a relative one stays in its package)."""
    found = {}
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        names |= {node.module for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) and node.module and not node.level}
        found[str(path.relative_to(ROOT))] = {name.split(".")[0] for name in names}
    return found


def paths_under_tests_named(folder: Path) -> dict[str, list[int]]:
    """File -> the numbers of its lines that name a path under tests/, in code or in a comment."""
    found = {}
    for path in sorted(folder.rglob("*.py")):
        lines = [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if TESTS_PATH.search(line)]
        if lines:
            found[str(path.relative_to(folder.parent))] = lines
    return found


def write_package(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder / "pkg"


def test_the_copilot_modules_import_one_another_without_a_cycle():
    cycle = find_cycle(import_graph(ROOT / "copilot"))
    assert not cycle, " -> ".join(cycle)


def test_the_copilot_packages_import_one_another_without_a_cycle():
    cycle = find_cycle(package_graph(import_graph(ROOT / "copilot"), "copilot"))
    assert not cycle, " -> ".join(cycle)


def test_package_code_never_imports_the_tests_or_the_benchmarks():
    wrong = {path: names & {"tests", "bench"} for path, names in top_level_imports(ROOT / "copilot").items()}
    assert not {path: names for path, names in wrong.items() if names}


def test_package_code_never_names_a_path_under_the_tests():
    assert not paths_under_tests_named(ROOT / "copilot")


def test_a_path_under_the_tests_is_found_however_it_is_written(tmp_path):
    package = write_package(tmp_path, {"pkg/__init__.py": "# the tests check this\n",
                                       "pkg/a.py": "A = ROOT / 'tests' / 'data'\n",
                                       "pkg/b.py": "import x\n# read from tests/data/b.jsonl\n"})
    assert paths_under_tests_named(package) == {"pkg/a.py": [1], "pkg/b.py": [2]}


def test_the_tests_never_import_the_benchmarks():
    assert not [path for path, names in top_level_imports(ROOT / "tests").items() if "bench" in names]


def test_a_cycle_through_a_lazy_relative_import_is_found(tmp_path):
    package = write_package(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "def f():\n    from . import b\n",
                                       "pkg/b.py": "from pkg.a import f\n"})
    assert find_cycle(import_graph(package)) == ["pkg.a", "pkg.b", "pkg.a"]


def test_a_cycle_between_packages_is_found_where_the_modules_have_none(tmp_path):
    package = write_package(tmp_path, {"pkg/__init__.py": "", "pkg/core.py": "from pkg.lib.schema import Row\n",
                                       "pkg/lib/__init__.py": "", "pkg/lib/schema.py": "",
                                       "pkg/lib/service.py": "from pkg.core import rank\n"})
    graph = import_graph(package)
    assert not find_cycle(graph)
    assert find_cycle(package_graph(graph, "pkg")) == ["pkg.core", "pkg.lib", "pkg.core"]


def test_the_main_block_of_a_module_is_a_node_of_its_own(tmp_path):
    package = write_package(tmp_path, {"pkg/__init__.py": "", "pkg/adapter.py": "if __name__ == '__main__':\n"
                                       "    from pkg.cli import main\n", "pkg/cli.py": "from pkg.adapter import x\n"})
    graph = import_graph(package)
    assert graph == {"pkg": set(), "pkg.adapter": set(), "pkg.adapter:__main__": {"pkg.cli"}, "pkg.cli": {"pkg.adapter"}}
    assert not find_cycle(graph)
