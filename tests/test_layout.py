"""The architecture holds: no import cycle, typer only in the CLI, rich only in the CLI and ui/,
no command module importing the app, no core module naming a command-line flag in a message.

Read from the source with ``ast`` (module-level imports, the ones that run at import time;
imports inside functions and under ``TYPE_CHECKING`` are lazy by design)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "ipsms"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def eager_imports(path: Path) -> set[str]:
    """Every module a file imports when it is imported itself."""
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If) and not _is_type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)

    visit(ast.parse(path.read_text()).body)
    return found


def internal_graph() -> dict[str, set[str]]:
    return {
        name: {m for m in eager_imports(path) if m in MODULES and m != name}
        for name, path in MODULES.items()
    }


def cycles_in(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle of ``graph`` (module -> the modules it imports), found by one walk."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])
    return cycles


def test_there_is_no_import_cycle() -> None:
    cycles = cycles_in(internal_graph())
    assert not cycles, f"import cycles: {cycles}"


def test_typer_only_in_the_cli_and_rich_only_in_the_cli_and_ui() -> None:
    for name, path in MODULES.items():
        imported = (
            eager_imports(path)
            | {
                n.module or ""
                for n in ast.walk(ast.parse(path.read_text()))
                if isinstance(n, ast.ImportFrom)
            }
            | {
                a.name
                for n in ast.walk(ast.parse(path.read_text()))
                if isinstance(n, ast.Import)
                for a in n.names
            }
        )
        roots = {m.split(".")[0] for m in imported}
        if not name.startswith("ipsms.cli"):
            assert "typer" not in roots and "click" not in roots, f"{name} imports typer"
        if not name.startswith(("ipsms.cli", "ipsms.ui")):
            assert "rich" not in roots, f"{name} imports rich"


def test_command_modules_do_not_import_the_app() -> None:
    for name, path in MODULES.items():
        if name.startswith("ipsms.cli.") and name != "ipsms.cli.app":
            assert "ipsms.cli.app" not in eager_imports(path), name


def test_no_core_message_names_a_flag() -> None:
    """Core errors name settings with ``errors.setting``; only the CLI knows flag names.
    (Docstrings and comments may mention flags: they explain, they are not shown.)"""
    flag = re.compile(r"(?<![\w-])--[a-z][a-z-]+")
    offenders = []
    for name, path in MODULES.items():
        if name.startswith(("ipsms.cli", "ipsms.ui")):
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(n.body[0].value)
            for n in ast.walk(tree)
            if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and n.body
            and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
                and flag.search(node.value)
            ):
                offenders.append(f"{name}:{node.lineno}: {node.value[:60]!r}")
    assert not offenders, "\n".join(offenders)


def test_every_module_is_in_the_architecture_doc() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    missing = [
        name
        for name, path in MODULES.items()
        if path.name not in ("__init__.py", "__main__.py")
        and not re.search(rf"(?<!\w){re.escape(path.name)}", doc)
    ]
    assert not missing, f"docs/architecture.md does not say what these hold: {missing}"


def every_import(path: Path) -> set[str]:
    """Every ipsms module a file imports, lazy imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in MODULES}


PARTS = (
    "listen",
    "store",
    "records",
    "deliver",
    "intelepeer",
    "inspect",
    "ui",
    "cli",
    "testing",
    "check",
)
# docs/architecture.md, "The rules between them": which part may import which.
MAY_IMPORT = {
    "root": {"root"},
    "store": {"root"},
    "intelepeer": {"root"},
    "listen": {"root", "store", "intelepeer", "inspect"},  # the session's lease, inspector
    "inspect": {"root", "store", "records", "deliver"},
    "records": {"root", "store"},
    "deliver": {"root", "records"},
    "testing": {"root", "listen", "deliver", "intelepeer"},
    "check": {"root", "deliver", "intelepeer"},
    "ui": {"root", "listen", "store", "records", "deliver", "intelepeer", "inspect", "check"},
    "cli": {"root", *PARTS},
}
ENTRY_POINTS = {"ipsms.__main__", "ipsms.pytest_plugin"}
# Names docs/pytest-plugin.md documented at these paths before the parts became packages.
COMPAT = {
    "ipsms.faults": "ipsms.listen.faults",
    "ipsms.listener": "ipsms.listen.app",
    "ipsms.delivery": "ipsms.deliver.engine",
}


def part_of(module: str) -> str:
    words = module.split(".")
    return words[1] if len(words) > 1 and words[1] in PARTS else "root"


def test_each_part_imports_only_what_the_architecture_doc_allows() -> None:
    offenders = []
    for name, path in MODULES.items():
        if name in ENTRY_POINTS or name in COMPAT or name == "ipsms":
            continue
        mine = part_of(name)
        for imported in every_import(path):
            theirs = part_of(imported)
            if theirs != mine and theirs not in MAY_IMPORT[mine]:
                offenders.append(f"{name} imports {imported}")
    assert not offenders, "\n".join(sorted(offenders))


def test_replay_is_the_one_delivery_module_that_reads_the_records() -> None:
    readers = sorted(
        name
        for name, path in MODULES.items()
        if part_of(name) == "deliver" and any(part_of(m) == "records" for m in every_import(path))
    )
    assert readers == ["ipsms.deliver.replay"]


def test_no_command_imports_another_command() -> None:
    shared = {
        "ipsms.cli",
        "ipsms.cli.io",
        "ipsms.cli.options",
        "ipsms.cli.help",
        "ipsms.cli.profiles",
        "ipsms.cli.commands",
        "ipsms.cli.api",
        "ipsms.cli.completion",
        "ipsms.cli.reference",
    }
    offenders = []
    for name, path in MODULES.items():
        if not name.startswith("ipsms.cli.") or name in shared or name == "ipsms.cli.app":
            continue
        for imported in every_import(path):
            if (
                imported.startswith("ipsms.cli.")
                and imported not in shared
                and imported != name
                and not imported.startswith(f"{name}.")
            ):
                offenders.append(f"{name} imports {imported}")
    assert not offenders, "\n".join(sorted(offenders))


def test_there_is_no_import_cycle_even_through_lazy_imports() -> None:
    # A module importing its own package (``ipsms.store.writer`` -> ``ipsms.store``) is not a
    # cycle: the package is imported first either way.
    graph = {
        name: {m for m in every_import(path) if m != name and not name.startswith(m + ".")}
        for name, path in MODULES.items()
    }
    cycles = cycles_in(graph)
    assert not cycles, f"import cycles: {cycles}"
