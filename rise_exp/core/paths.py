"""Where rise-exp's own files are: the Hydra config directory."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
#: The Hydra config tree (``conf/`` next to the package in a source checkout).
CONF_DIR = str(PACKAGE_DIR.parent / "conf")
