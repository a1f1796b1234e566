"""One way to write a test workspace: ``mlbuild.toml`` and the files it holds."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

WORKSPACE_FILE = "mlbuild.toml"


def write_workspace(root: Path, files: Mapping[str, str], *, name: str = "test") -> Path:
    """Write ``files`` (workspace-relative path -> text) under ``root``, creating folders, and
    ``mlbuild.toml`` as ``[workspace] name = NAME`` unless ``files`` has one of its own.

    Writing over an existing workspace replaces the files given and leaves the others.
    Returns ``root``.
    """
    root.mkdir(parents=True, exist_ok=True)
    if WORKSPACE_FILE not in files:
        (root / WORKSPACE_FILE).write_text(f'[workspace]\nname = "{name}"\n')
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
