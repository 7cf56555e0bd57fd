"""The hub's layers: each subpackage of `handlers` imports only the ones below it.

Read from the source (no import runs), every import counts: at module level,
inside a function, or under `TYPE_CHECKING` (a type named from a layer above
is a dependency on it all the same; a layer below states what it needs as a
Protocol instead). The public API, `handlers/__init__.py`, stands above all.
"""

from __future__ import annotations

import ast
from pathlib import Path

import handlers

# Bottom first. A layer may import itself and anything listed before it.
LAYERS = ["wire", "engineio", "operations", "transports", "socketio", "cluster"]

ROOT = Path(handlers.__file__).parent


def imports_of(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, absolute module) for every import of a `handlers` module in the file at `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] if node.module else [module + "." + a.name for a in node.names]
            found += [(node.lineno, t) for t in targets]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, m) for line, m in found if m == "handlers" or m.startswith("handlers.")]


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_is_in_a_layer():
    loose = [p.name for p in ROOT.glob("*.py") if p.name != "__init__.py"]
    assert loose == [], f"modules outside the layers: {loose}"
    assert sorted(p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()) == sorted(LAYERS)


def test_no_import_goes_up_a_layer():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        module = ".".join(parts)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        if module == "handlers":
            continue  # the public API: above every layer
        mine = LAYERS.index(layer_of(module))
        for line, target in imports_of(path, package):
            theirs = layer_of(target)
            if theirs is None or LAYERS.index(theirs) > mine:
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line} imports {target}")
    assert wrong == [], "imports up a layer (or of the public API from inside):\n" + "\n".join(wrong)


def test_the_check_sees_an_upward_import(tmp_path):
    """The rule itself: a relative import from the wire up to the hub is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from ..socketio.hub import Hub\n")
    assert imports_of(bad, "handlers.wire") == [(1, "handlers.socketio.hub")]
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    from . import session\n")
    assert imports_of(lazy, "handlers.engineio") == [(2, "handlers.engineio.session")]
