"""Where the browser files are: inside the package when installed, beside it in a checkout.

A checkout keeps `static/` (our client, the board's script and style) and
`templates/` at the top, beside `handlers/`; a wheel carries them as
`handlers/static` and `handlers/templates` (setup.cfg maps the folders at
build time), because nothing outside a package's folder gets installed.
Both places are looked at, the package's first, so one lookup serves both.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # handlers/


def data_dir(name: str) -> str:
    """The folder `name` (``"static"`` or ``"templates"``): the installed one, else the checkout's."""
    for base in (PACKAGE, PACKAGE.parent):
        folder = base / name
        if folder.is_dir():
            return str(folder)
    raise FileNotFoundError(f"no {name}/ in {PACKAGE} nor beside it: a broken install?")


STATIC_DIR = data_dir("static")        # socket.io.js (served by the hub), board.js, board.css
TEMPLATE_DIR = data_dir("templates")   # the board's page
