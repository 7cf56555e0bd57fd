"""The public API is the whole story: what an app needs comes from `handlers`, documented.

`board.py` is the example app: it imports nothing from inside the package.
Every public class exported from `handlers` documents its public methods and
properties, and so does every exported function.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import handlers

ROOT = Path(handlers.__file__).resolve().parent.parent


def test_board_uses_only_the_public_api():
    tree = ast.parse((ROOT / "board.py").read_text())
    inside = [f"line {node.lineno}: {node.module}" for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("handlers.")]
    inside += [f"line {node.lineno}: {a.name}" for node in ast.walk(tree) if isinstance(node, ast.Import)
               for a in node.names if a.name.startswith("handlers.")]
    assert inside == []
    public = set(handlers.__all__)
    names = [a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module == "handlers"
             for a in node.names]
    assert names and set(names) <= public


def undocumented(cls: type) -> list[str]:
    missing = []
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            function = member.fget
        elif isinstance(member, (staticmethod, classmethod)):
            function = member.__func__
        elif inspect.isfunction(member):
            function = member
        else:
            continue
        if not (function.__doc__ or "").strip():
            missing.append(f"{cls.__name__}.{name}")
    return missing


def test_every_public_method_has_a_docstring():
    missing = []
    for name in handlers.__all__:
        thing = getattr(handlers, name)
        if inspect.isclass(thing):
            if not (thing.__doc__ or "").strip():
                missing.append(name)
            if not issubclass(thing, Exception):
                missing += undocumented(thing)
        elif callable(thing) and not (thing.__doc__ or "").strip():
            missing.append(name)
    assert missing == []
