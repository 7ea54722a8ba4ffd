"""The package is layered, data <- models <- train <- eval <- viz <- online <- cli: a module imports
(anywhere in the file, functions included) only from its own subpackage or an earlier one, plus
``cutkit._version`` and ``cutkit._checks`` (the numeric-setting checks); ``cutkit/__init__.py`` and
``cutkit/__main__.py`` sit on top. Every module is in a layer, and its imports form no cycle: the
imports inside functions count (they run when the function is first called, and a cycle through
them is a cycle of the design); only those under ``if TYPE_CHECKING:`` (never run) do not.

No module imports another module's private name (one leading underscore; a private *module* such
as ``cutkit._checks`` counts as a module, so importing it is allowed), and no module is longer than
:data:`MAX_MODULE_LINES` lines.

The checkers are tested on small packages with planted violations before they clear the real tree."""

from __future__ import annotations

import ast
from pathlib import Path

from .helpers import REPO

LAYERS = ("data", "models", "train", "eval", "viz", "online", "cli")
"""Lowest first: a layer may import from itself and the layers before it."""
TOP = ("__init__", "__main__")
"""Root modules above every layer (they may import anything)."""
SHARED = ("_version", "_checks")
"""Root modules below every layer (anything may import them)."""


def module_name(path: Path, root: Path) -> str:
    """``pkg.sub.mod`` of ``root/sub/mod.py`` (``pkg.sub`` of ``root/sub/__init__.py``)."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, *, type_checking: bool = True) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of a module at any depth (module level, inside functions, classes,
    ``try`` and ``if`` blocks), in source order; without those under ``if TYPE_CHECKING:`` (which
    never run) when ``type_checking`` is False."""
    found, stack = [], list(reversed(tree.body))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node.test) and not type_checking:
            stack.extend(reversed(node.orelse))
        else:
            stack.extend(reversed(list(ast.iter_child_nodes(node))))
    return found


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]):
    """The module names an import statement names (``from p import m`` names ``p.m`` when that is
    a module of the tree, ``p`` otherwise); relative imports resolved against ``module``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = _from_module(node, module, is_package)
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


def _from_module(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module a ``from ... import`` statement of ``module`` imports from, relative imports
    resolved."""
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join([*anchor, *([base] if base else [])])
    return base


def _layer(name: str, package: str) -> str | None:
    """The layer of a module of ``package``: one of LAYERS, "top", "shared", or None (unplaced)."""
    parts = name.split(".")
    if len(parts) == 1 or parts[1] in TOP:
        return "top"
    if parts[1] in SHARED:
        return "shared"
    return parts[1] if parts[1] in LAYERS else None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component that has one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(start: str) -> None:  # iterative Tarjan
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for succ in edges:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    cycles = []
    for component in components:
        start = min(component)
        if len(component) == 1 and start not in graph[start]:
            continue
        # shortest path from start back to itself inside the component (breadth first)
        previous: dict[str, str] = {}
        frontier = [start]
        while start not in previous:
            following = []
            for node in frontier:
                for succ in sorted(graph[node] & component):
                    if succ not in previous:
                        previous[succ] = node
                        following.append(succ)
            frontier = following
        path = [start]
        while len(path) == 1 or path[-1] != start:
            path.append(previous[path[-1]])
        cycles.append(path[::-1])
    return sorted(cycles)


def _modules(root: Path) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` file of the package at ``root``."""
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the package at ``root`` that it imports, anywhere in its file
    (functions included; not under ``if TYPE_CHECKING:``)."""
    names = _modules(root)
    known = set(names)
    graph: dict[str, set[str]] = {name: set() for name in names}
    for name, path in names.items():
        is_package = path.name == "__init__.py"
        for node in _imports(_parse(path), type_checking=False):
            graph[name] |= {t for t in _targets(node, name, is_package, known) if t in known}
    return graph


def find_cycles(root: Path) -> list[list[str]]:
    """The import cycles of the package at ``root`` (any folder holding Python modules), one
    ``[a, b, ..., a]`` path per strongly connected component, function-level imports included."""
    return _cycles(import_graph(root))


def check_layering(root: Path) -> list[str]:
    """Every layering problem of the package at ``root`` (its folder), one line each: modules in no
    layer, imports of a later layer (or of the package's top), and import cycles."""
    package = root.name
    names = _modules(root)
    known = set(names)
    problems = []
    for name, path in names.items():
        rel = f"{package}/{path.relative_to(root).as_posix()}"
        layer = _layer(name, package)
        if layer is None:
            problems.append(f"{rel}: in no layer (place it in one of {', '.join(LAYERS)})")
        is_package = path.name == "__init__.py"
        for node in _imports(_parse(path)):
            for target in _targets(node, name, is_package, known):
                if target != package and not target.startswith(package + "."):
                    continue
                target_layer = _layer(target, package)
                allowed = (
                    layer in (None, "top")  # unplaced modules are reported once, above
                    or target_layer == "shared"
                    or (
                        target_layer in LAYERS
                        and layer in LAYERS
                        and LAYERS.index(target_layer) <= LAYERS.index(layer)
                    )
                )
                if not allowed:
                    problems.append(
                        f"{rel}:{node.lineno}: {layer} imports {target} "
                        f"({target_layer or 'no layer'})"
                    )
    for cycle in find_cycles(root):
        problems.append("import cycle: " + " -> ".join(cycle))
    return problems


def write_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


CLEAN = {
    "__init__.py": "from pkg.cli.main import run\n",
    "__main__.py": "import pkg.cli.main\n",
    "_version.py": "__version__ = '0'\n",
    "data/__init__.py": "",
    "data/records.py": "from pkg._version import __version__\n",
    "models/__init__.py": "",
    "models/load.py": "from ..data import records\nfrom pkg.data.records import x\n",
    "online/__init__.py": "",
    "online/loop.py": "def f():\n    from pkg.models.load import y\n",
    "cli/__init__.py": "",
    "cli/main.py": "import pkg.online.loop\nfrom pkg.data import records\n",
}


def test_checker_passes_a_clean_package(tmp_path):
    assert check_layering(write_package(tmp_path / "pkg", CLEAN)) == []


def test_checker_reports_an_import_of_a_later_layer(tmp_path):
    files = {
        **CLEAN,
        "data/records.py": "def f():\n    from pkg.cli.main import run\n",  # inside a function
        "models/load.py": "from ..online import loop\n",  # relative
        "train/__init__.py": "import pkg\n",  # the top
    }
    problems = check_layering(write_package(tmp_path / "pkg", files))
    assert problems == [
        "pkg/data/records.py:2: data imports pkg.cli.main (cli)",
        "pkg/models/load.py:1: models imports pkg.online.loop (online)",
        "pkg/train/__init__.py:1: train imports pkg (top)",
        # each upward import closes a cycle with an import of CLEAN's (one inside a function)
        "import cycle: pkg.cli.main -> pkg.data.records -> pkg.cli.main",
        "import cycle: pkg.models.load -> pkg.online.loop -> pkg.models.load",
    ]


def test_checker_reports_an_import_cycle(tmp_path):
    files = {
        **CLEAN,
        "data/a.py": "from pkg.data import b\n",
        "data/b.py": "import typing\nif typing.TYPE_CHECKING:\n    import pkg.cli\n"
        "from pkg.data.a import x\n",
        "data/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import d\n",
        # d -> c only back through TYPE_CHECKING, d -> a inside a function: neither is a cycle
        "data/d.py": "from . import c\ndef f():\n    from . import a\n",
    }
    problems = check_layering(write_package(tmp_path / "pkg", files))
    assert problems == [
        "pkg/data/b.py:3: data imports pkg.cli (cli)",  # TYPE_CHECKING still obeys the layers
        "import cycle: pkg.data.a -> pkg.data.b -> pkg.data.a",
    ]


def test_checker_reports_a_module_in_no_layer(tmp_path):
    files = {**CLEAN, "utils.py": "", "extras/__init__.py": "from pkg.cli import main\n"}
    problems = check_layering(write_package(tmp_path / "pkg", files))
    assert problems == [
        "pkg/extras/__init__.py: in no layer (place it in one of "
        "data, models, train, eval, viz, online, cli)",
        "pkg/utils.py: in no layer (place it in one of data, models, train, eval, viz, online, cli)",
    ]


def test_cutkit_is_layered_without_cycles():
    problems = check_layering(REPO / "cutkit")
    assert not problems, "\n".join(problems)


def test_scanner_finds_a_cycle_through_a_function_level_import(tmp_path):
    """Two modules, one importing the other at module level and the other importing it back
    inside a function: a cycle that a scan of module-level imports alone does not see."""
    root = write_package(
        tmp_path / "planted",
        {
            "__init__.py": "",
            "first.py": "from planted import second\n",
            "second.py": "def late():\n    from planted.first import thing\n    return thing\n",
        },
    )
    assert find_cycles(root) == [["planted.first", "planted.second", "planted.first"]]
    assert import_graph(root)["planted.second"] == {"planted.first"}
    # the same package with the function-level import under TYPE_CHECKING has no cycle
    (root / "second.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from planted import first\n"
    )
    assert find_cycles(root) == []


def test_checker_reports_a_function_level_cycle_and_upward_import(tmp_path):
    files = {
        **CLEAN,
        "data/a.py": "import pkg.data.b\n",
        "data/b.py": "def f():\n    import pkg.data.a\n",  # back inside a function
        "models/load.py": "def g():\n    import pkg.train.step\n",  # upward inside a function
        "train/__init__.py": "",
        "train/step.py": "",
    }
    problems = check_layering(write_package(tmp_path / "pkg", files))
    assert problems == [
        "pkg/models/load.py:2: models imports pkg.train.step (train)",
        "import cycle: pkg.data.a -> pkg.data.b -> pkg.data.a",
    ]


def test_cutkit_has_no_import_cycle_even_through_functions():
    cycles = find_cycles(REPO / "cutkit")
    assert cycles == [], "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_vocabulary_is_a_leaf():
    """cutkit.train.vocabulary imports nothing from cutkit (nor anything else), so every module
    may import it without a cycle."""
    assert import_graph(REPO / "cutkit")["cutkit.train.vocabulary"] == set()
    tree = _parse(REPO / "cutkit" / "train" / "vocabulary.py")
    assert [getattr(node, "module", None) for node in _imports(tree)] == ["__future__"]


# ---------------------------------------------------------------------------------- private names

MAX_MODULE_LINES = 400
"""No module of cutkit is longer (the design notes: "modules stay under ~400 lines")."""


def private_name_imports(root: Path) -> list[str]:
    """Every import, anywhere in a module of the package at ``root`` (functions included), of a
    *private name* (one leading underscore, not a dunder) from another module of the package, one
    line each. A private *module* (``from pkg import _checks``, ``import pkg._version``) is a
    module, not a name: it is allowed (the shared root modules are private modules on purpose);
    ``from pkg._version import __version__`` is a dunder, allowed too."""
    package = root.name
    names = _modules(root)
    known = set(names)
    problems = []
    for name, path in names.items():
        is_package = path.name == "__init__.py"
        for node in _imports(_parse(path)):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = _from_module(node, name, is_package)
            if base != package and not base.startswith(package + "."):
                continue
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if not private or f"{base}.{alias.name}" in known:
                    continue
                rel = f"{package}/{path.relative_to(root).as_posix()}"
                problems.append(f"{rel}:{node.lineno}: imports private {alias.name} from {base}")
    return problems


def long_modules(root: Path, limit: int = MAX_MODULE_LINES) -> list[str]:
    """``path: N lines`` for every module of the package at ``root`` longer than ``limit`` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > limit:
            found.append(f"{root.name}/{path.relative_to(root).as_posix()}: {n} lines")
    return found


def test_private_name_checker_on_a_planted_package(tmp_path):
    root = write_package(
        tmp_path / "pkg",
        {
            "__init__.py": "",
            "_checks.py": "def check():\n    pass\n",
            "_version.py": "__version__ = '0'\n",
            "data/__init__.py": "",
            "data/a.py": "_SECRET = 1\nPUBLIC = 2\n",
            "data/b.py": "from pkg.data.a import PUBLIC\n"  # public: fine
            "from pkg import _checks\n"  # a private module: a module, not a name
            "from pkg._version import __version__\n"  # a dunder
            "from pkg._checks import check\n"
            "def f():\n    from .a import _SECRET\n",  # inside a function, relative
            "data/c.py": "from pkg.data.a import PUBLIC, _SECRET\nfrom os import _exit\n",
        },
    )
    assert private_name_imports(root) == [
        "pkg/data/b.py:6: imports private _SECRET from pkg.data.a",
        "pkg/data/c.py:1: imports private _SECRET from pkg.data.a",
    ]


def test_no_cutkit_module_imports_another_modules_private_name():
    problems = private_name_imports(REPO / "cutkit")
    assert not problems, "\n".join(problems)


def test_long_module_checker_on_a_planted_package(tmp_path):
    root = write_package(tmp_path / "pkg", {"short.py": "x = 1\n" * 3, "long.py": "x = 1\n" * 5})
    assert long_modules(root, limit=4) == ["pkg/long.py: 5 lines"]


def test_no_cutkit_module_is_over_400_lines():
    found = long_modules(REPO / "cutkit")
    assert not found, "split along a seam (one reason to change per module):\n" + "\n".join(found)
