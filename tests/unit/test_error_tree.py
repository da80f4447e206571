"""The error tree drawn in ``errors.py`` names every exception class the product defines."""

from __future__ import annotations

import ast
from pathlib import Path

from watchkeeper import errors

SOURCE = Path(errors.__file__).parent


def _exception_classes() -> dict[str, str]:
    """Every class named ``*Error`` under ``src/watchkeeper``, with the file defining it."""
    found = {}
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error") and node.bases:
                found[node.name] = str(path.relative_to(SOURCE))
    return found


def test_error_tree_every_exception_class_drawn() -> None:
    """A new exception class anywhere in the product must be placed in the drawn tree."""
    drawing = errors.__doc__ or ""
    missing = {name: where for name, where in _exception_classes().items() if name not in drawing}
    assert missing == {}, f"draw these in errors.py's tree: {missing}"
