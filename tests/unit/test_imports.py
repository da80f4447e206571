"""The dependency direction of ``src/`` (README, "Layout"), read from the source with ``ast``.

Adapters (``containers``, ``swarm``, ``registry``, ``notify``) never import the use cases, the
API or the daemon that sit on top of them; ``actions.update`` uses ``actions.groups``, and both
share their vocabulary through ``actions.outcomes``: the two never import each other (a cycle),
not even for type checking. And the services built once are built in one place: ``build_services``
makes the only StateStore (one per state file) and the only Metrics.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ADAPTERS = (
    "watchkeeper.containers",
    "watchkeeper.swarm",
    "watchkeeper.registry",
    "watchkeeper.notify",
)
ABOVE_ADAPTERS = ("watchkeeper.actions", "watchkeeper.api", "watchkeeper.daemon")


def module_name(path: Path, root: Path = SRC) -> str:
    """``src/watchkeeper/actions/run.py`` -> ``watchkeeper.actions.run`` (packages by name)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """The module's statements, with those under ``if TYPE_CHECKING:`` lifted to the top."""
    found: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            found += _top_level_statements(node.body)
        else:
            found.append(node)
    return found


def imports_of(path: Path, root: Path = SRC) -> set[str]:
    """Every module a source file imports at module level or under ``if TYPE_CHECKING:``.

    ``from a.b import c`` counts as ``a.b`` and as ``a.b.c`` (``c`` may be a module).
    """
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in _top_level_statements(ast.parse(path.read_text()).body):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def source_imports() -> dict[str, set[str]]:
    """Module name -> what it imports, for every module under ``src/``."""
    return {module_name(path): imports_of(path) for path in sorted(SRC.rglob("*.py"))}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def boundary_violations(imports: dict[str, set[str]]) -> list[str]:
    """``importer -> imported`` for every import that breaks the dependency direction."""
    bad = []
    for module, targets in sorted(imports.items()):
        if _within(module, ADAPTERS):
            bad += [f"{module} -> {t}" for t in sorted(targets) if _within(t, ABOVE_ADAPTERS)]
    update, groups = "watchkeeper.actions.update", "watchkeeper.actions.groups"
    if _imports(imports, update, groups) and _imports(imports, groups, update):
        bad.append(f"{update} <-> {groups}")
    return bad


def _imports(imports: dict[str, set[str]], importer: str, imported: str) -> bool:
    return any(_within(t, (imported,)) for t in imports.get(importer, ()))


def test_imports_source_adapters_and_update_groups_keep_one_direction() -> None:
    """No adapter imports actions/api/daemon; update and groups do not import each other."""
    imports = source_imports()

    assert "watchkeeper.actions.groups" in imports
    assert "watchkeeper.containers.swap" in imports
    assert "watchkeeper.swarm.services" in imports
    assert boundary_violations(imports) == []


def test_imports_checker_sees_type_checking_and_relative_imports(tmp_path: Path) -> None:
    """The checker itself: TYPE_CHECKING, relative and mutual imports are caught."""
    folder = tmp_path / "watchkeeper" / "notify"
    folder.mkdir(parents=True)
    hidden = folder / "hidden.py"
    hidden.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from watchkeeper.actions.run import Services\n"
    )
    relative = folder / "relative.py"
    relative.write_text("from ..daemon import Runner\n")
    found = {module_name(p, tmp_path): imports_of(p, tmp_path) for p in (hidden, relative)}
    found["watchkeeper.actions.update"] = {"watchkeeper.actions", "watchkeeper.actions.groups"}
    found["watchkeeper.actions.groups"] = {"watchkeeper.actions.update.UpdateContext"}

    assert boundary_violations(found) == [
        "watchkeeper.notify.hidden -> watchkeeper.actions.run",
        "watchkeeper.notify.hidden -> watchkeeper.actions.run.Services",
        "watchkeeper.notify.relative -> watchkeeper.daemon",
        "watchkeeper.notify.relative -> watchkeeper.daemon.Runner",
        "watchkeeper.actions.update <-> watchkeeper.actions.groups",
    ]


def construction_sites(class_name: str) -> list[str]:
    """``module.function`` of every call ``ClassName(...)`` in ``src/``."""
    sites = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                called = node.func if isinstance(node, ast.Call) else None
                if isinstance(called, ast.Name) and called.id == class_name:
                    sites.append(f"{module_name(path)}.{function.name}")
    return sites


def test_services_state_store_and_metrics_built_in_build_services_only() -> None:
    """One StateStore per state file and one Metrics: both are built by build_services alone."""
    assert construction_sites("StateStore") == ["watchkeeper.daemon.build_services"]
    assert construction_sites("Metrics") == ["watchkeeper.daemon.build_services"]
