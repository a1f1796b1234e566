"""One way to write a test workspace: ``mlbuild.toml`` and the files it holds."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

WORKSPACE_FILE = "mlbuild.toml"

# The two rules most executor tests build (a list, then its sum); a test's own rules follow them
# in the same file, with the imports they need.
NUMBERS_RULES = '''
from mlbuild import rule


@rule
def numbers(config: dict) -> list:
    return list(range(config["n"]))


@rule
def total(xs: list) -> int:
    print("adding", len(xs), "numbers")
    return sum(xs)
'''


def write_workspace(root: Path, files: Mapping[str, str | None], *, name: str = "test") -> Path:
    """Write ``files`` under ``root`` (see ``write_files``), and a ``mlbuild.toml`` of
    ``[workspace] name = NAME`` when there is none yet and ``files`` gives none. Returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    if WORKSPACE_FILE not in files and not (root / WORKSPACE_FILE).exists():
        (root / WORKSPACE_FILE).write_text(f'[workspace]\nname = "{name}"\n')
    write_files(root, files)
    return root


def write_files(root: Path, files: Mapping[str, str | None]) -> None:
    """Each of ``files`` (a path relative to ``root`` -> its text, folders made as needed; None
    deletes the file or folder). Files not named are left as they are."""
    for rel, text in files.items():
        path = root / rel
        if text is None:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
