"""The wheel, installed (not editable) in a virtualenv of its own, serves the board from an empty folder.

A checkout finds `static/` and `templates/` beside `handlers/`; an install has
only what the wheel carries. This builds the wheel from a copy of the sources,
installs it into a fresh virtualenv and starts `board` (the console script)
and `python -m board` from an empty folder: the page, our client at
`/socket.io/socket.io.js`, and a Socket.IO session over long-polling.

The dependencies are not installed again: the virtualenv sees this test's own
site-packages through a path file placed after its own, so that `handlers`
and `board` can only come from the wheel (checked from inside the process).
"""

from __future__ import annotations

import json
import shutil
import site
import subprocess
import sys
import urllib.request
import venv
from pathlib import Path

import pytest

from e2e_support import ROOT, Board

SOURCES = ["setup.cfg", "pyproject.toml", "README.md", "board.py", "posts.py", "handlers", "static", "templates"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A virtualenv with the wheel built from this checkout installed in it; its bin/ folder."""
    base = tmp_path_factory.mktemp("package")
    source = base / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # No build isolation: setuptools and wheel are this environment's (no index needed).
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(base / "dist"), str(source)],
                   check=True, timeout=120)
    wheel = next((base / "dist").glob("board-*.whl"))
    env = base / "venv"
    venv.create(env, with_pip=False)
    # This environment's pip installs into the new one (`--python`): a real install, console script and all.
    subprocess.run(pip + ["--python", str(env / "bin" / "python"), "install", "--no-deps", "--no-index", str(wheel)],
                   check=True, timeout=120)
    target = next(env.glob("lib/python*/site-packages"))
    # The dependencies from this environment, after the wheel's own site-packages.
    (target / "zz_test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return env / "bin"


class InstalledBoard(Board):
    """The installed board, started from an empty folder."""

    def __init__(self, argv: list[str], folder: Path, name: str):
        super().__init__(folder / "board.db", name=name)
        self.argv = argv
        self.cwd = folder

    def command(self):
        return self.argv + [f"--port={self.port}", "--address=127.0.0.1", "--db=:memory:", "--drain_seconds=0.2"]


def get(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=5) as response:
        return response.status, response.read()


def test_the_wheel_imports_from_its_install(installed):
    """`handlers` and `board` come from the virtualenv, with the browser files inside the package."""
    out = subprocess.run(
        [str(installed / "python"), "-c",
         "import json, board, handlers; print(json.dumps([board.__file__, handlers.__file__, "
         "handlers.STATIC_DIR, handlers.TEMPLATE_DIR]))"],
        cwd=installed, capture_output=True, text=True, check=True, timeout=30)
    venv_root = str(installed.parent)
    paths = json.loads(out.stdout)
    assert all(p.startswith(venv_root) for p in paths), paths
    assert paths[2].endswith("handlers/static") and paths[3].endswith("handlers/templates")


@pytest.mark.parametrize("how", ["board", "python -m board"])
def test_installed_board_serves_page_client_and_wire(installed, tmp_path, how):
    folder = tmp_path / "empty"
    folder.mkdir()
    argv = [str(installed / "board")] if how == "board" else [str(installed / "python"), "-m", "board"]
    with InstalledBoard(argv, folder, name=f"installed-{how.replace(' ', '-')}") as board:
        status, page = get(board.url)
        assert status == 200 and b'src="/socket.io/socket.io.js?v=' in page
        status, client = get(board.url + "socket.io/socket.io.js")
        assert status == 200 and client == (ROOT / "static" / "socket.io.js").read_bytes()
        status, script = get(board.url + "static/board.js")
        assert status == 200 and script == (ROOT / "static" / "board.js").read_bytes()
        # The wire: an Engine.IO handshake, then the main namespace joined over long-polling.
        status, opened = get(board.url + "socket.io/?EIO=4&transport=polling")
        assert status == 200 and opened.startswith(b"0{")
        sid = json.loads(opened[1:])["sid"]
        poll = board.url + f"socket.io/?EIO=4&transport=polling&sid={sid}"
        assert get(poll, data=b"40") == (200, b"ok")
        status, joined = get(poll)
        assert status == 200 and joined.startswith(b'40{"sid":')
    assert list(folder.iterdir()) == [] or all(p.name.endswith(".log") for p in folder.iterdir())
