"""The house rules of ``fgra_core`` (docs/architecture.md, "Rooms and their order"): every import
goes to the module's own room or a lower one, no two modules import each other (directly or
round a longer loop, function-level imports included), imports inside the package are absolute,
and no module is over about 500 lines unless its docstring says why it must stay whole."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fgra_core"

# lowest first; a room may import its own modules and those of the rooms before it
ROOMS = ("utils", "config", "data", "models", "eval", "engine", "analysis", "viz", "study")
TOP = {"fgra_core": -1, "fgra_core.train": ROOMS.index("engine")}   # the package and its train command
MAX_LINES = 500
WHOLE_MARK = "must stay whole"


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    name = ".".join(parts)
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def room_of(module: str) -> int:
    if module in TOP:
        return TOP[module]
    room = module.split(".")[1]
    if room not in ROOMS:
        raise AssertionError(f"{module} is in no room: a module belongs to one of {', '.join(ROOMS)}")
    return ROOMS.index(room)


def imports_of(path: Path, package_name: str) -> list[tuple[int, str, bool]]:
    """(line, imported module, relative?) for every import of the package in ``path``; ``from X
    import y`` counts as X.y when X.y is a module of the package, else as X."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                out.append((node.lineno, node.module or "", True))
            elif node.module and (node.module == package_name or node.module.startswith(package_name + ".")):
                for alias in node.names:
                    out.append((node.lineno, f"{node.module}.{alias.name}", False))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name, False) for a in node.names if a.name.startswith(package_name + "."))
    return out


def check_house(package: Path) -> list[str]:
    """Every breach of the house rules in ``package``, one line each."""
    name = package.name
    modules = {module_name(p, package): p for p in sorted(package.rglob("*.py"))}
    problems: list[str] = []
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        for line, target, relative in imports_of(path, name):
            where = f"{path.relative_to(package.parent)}:{line}"
            if relative:
                problems.append(f"{where}: relative import (imports inside the package are absolute)")
                continue
            while target not in modules and "." in target:   # an attribute of a module: the module
                target = target.rsplit(".", 1)[0]
            if target not in modules or target == mod:
                continue
            graph[mod].add(target)
            src_room, dst_room = room_of(mod), room_of(target)
            if dst_room > src_room:
                problems.append(f"{where}: upward import {mod} -> {target} "
                                f"({ROOMS[src_room] if src_room >= 0 else mod} may not import {ROOMS[dst_room]})")
        text = path.read_text()
        n_lines = len(text.splitlines())
        doc = ast.get_docstring(ast.parse(text)) or ""
        if n_lines > MAX_LINES and WHOLE_MARK not in doc:
            problems.append(f"{path.relative_to(package.parent)}: {n_lines} lines (over {MAX_LINES}, and its "
                            f"docstring does not say why it {WHOLE_MARK})")
    problems.extend(f"import cycle: {' -> '.join(c)}" for c in cycles(graph))
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp) + [sorted(comp)[0]])

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_package_keeps_the_house_rules():
    problems = check_house(PACKAGE)
    assert not problems, "\n".join(problems)


def test_every_room_says_what_it_holds_and_may_import():
    for room in ROOMS:
        init = PACKAGE / room / "__init__.py"
        assert init.is_file(), f"room {room} has no __init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "May import" in doc, f"{init}: the docstring says what the room may import"


# ----------------------------------------------------------------- the checker itself can fail


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "fgra_core"
    for rel, text in files.items():
        p = pkg / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return pkg


def test_checker_finds_an_upward_import(tmp_path):
    pkg = _tree(tmp_path, {"__init__.py": "", "data/__init__.py": "", "engine/__init__.py": "",
                           "data/a.py": "from fgra_core.engine.b import f\n", "engine/b.py": "def f(): pass\n"})
    assert check_house(pkg) == ["fgra_core/data/a.py:1: upward import fgra_core.data.a -> fgra_core.engine.b "
                                "(data may not import engine)"]


def test_checker_finds_a_cycle_through_function_level_imports(tmp_path):
    pkg = _tree(tmp_path, {"__init__.py": "", "engine/__init__.py": "",
                           "engine/a.py": "def f():\n    from fgra_core.engine import b\n",
                           "engine/b.py": "def g():\n    from fgra_core.engine.a import f\n"})
    assert check_house(pkg) == ["import cycle: fgra_core.engine.a -> fgra_core.engine.b -> fgra_core.engine.a"]


def test_checker_finds_relative_imports_and_long_modules(tmp_path):
    long_body = "x = 1\n" * (MAX_LINES + 1)
    pkg = _tree(tmp_path, {"__init__.py": "", "utils/__init__.py": "", "utils/a.py": "from . import b\n",
                           "utils/b.py": long_body, "utils/c.py": f'"""This one {WHOLE_MARK}: one table."""\n' + long_body})
    problems = check_house(pkg)
    assert problems == ["fgra_core/utils/a.py:1: relative import (imports inside the package are absolute)",
                        f"fgra_core/utils/b.py: {MAX_LINES + 1} lines (over {MAX_LINES}, and its docstring does not "
                        f"say why it {WHOLE_MARK})"]


@pytest.mark.parametrize("module,room", [("fgra_core.utils.io", "utils"), ("fgra_core.study.runner", "study")])
def test_rooms_are_read_from_the_module_path(module, room):
    assert room_of(module) == ROOMS.index(room)


def test_every_package_is_listed_for_installation():
    """pyproject.toml names the packages one by one (the notebooks are mapped in as package data):
    a new room must be added there, or a regular install would lack it."""
    tomllib = pytest.importorskip("tomllib")

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {module_name(p, PACKAGE) for p in PACKAGE.rglob("__init__.py")}
    assert folders | {"fgra_core.notebooks"} == listed
