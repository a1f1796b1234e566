"""``params("params.yaml", "train")``: a target's config read from a params file (DVC style).

Called in a ``BUILD.py`` while the workspace loads: the section becomes the target's config as
plain data, so the key covers exactly that section's values — editing another section of the
same file rebuilds nothing, and ``why`` / ``metrics diff`` name the changed field as they do for
a config written inline.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from mlbuild.rules.target import DeclarationError, current_package_dir, workspace_root


def params(path: str, section: str | None = None) -> dict[str, Any]:
    """The ``section`` (dotted for nesting: ``"train.optim"``) of a YAML or TOML file, relative
    to the ``BUILD.py``'s folder (``//path`` from the workspace root); the whole file when
    ``section`` is None."""
    where = _locate(path)
    try:
        raw = where.read_bytes()
    except OSError as exc:
        raise DeclarationError(f"params file {path}: {exc.strerror or exc}") from None
    data = _parse(where, raw, path)
    node: Any = data
    for part in section.split(".") if section else []:
        if not isinstance(node, dict) or part not in node:
            have = ", ".join(sorted(node)) if isinstance(node, dict) else "no sections"
            raise DeclarationError(f"params file {path}: no section {section!r} (it has: {have})")
        node = node[part]
    if not isinstance(node, dict):
        raise DeclarationError(f"params file {path}: section {section!r} is a {type(node).__name__}, not a table of fields")
    return dict(node)


def _locate(path: str) -> Path:
    root, here = workspace_root(), current_package_dir()
    if root is None or here is None:
        raise DeclarationError("params() may only be called while mlbuild loads a BUILD.py")
    where = (root / path[2:]) if path.startswith("//") else (here / path)
    resolved = where.resolve()
    if resolved != root and root not in resolved.parents:
        raise DeclarationError(f"params file {path} is outside the workspace")
    return resolved


def _parse(where: Path, raw: bytes, shown: str) -> Any:
    try:
        if where.suffix in (".toml",):
            return tomllib.loads(raw.decode())
        if where.suffix in (".yaml", ".yml"):
            import yaml  # PyYAML: the format DVC users keep their params in

            return yaml.safe_load(raw) or {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DeclarationError(f"params file {shown}: {exc}") from None
    except Exception as exc:  # yaml.YAMLError, without importing yaml to name it
        raise DeclarationError(f"params file {shown}: {type(exc).__name__}: {exc}") from None
    raise DeclarationError(f"params file {shown}: use a .yaml, .yml or .toml file")
