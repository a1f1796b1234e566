"""The running UI's address, in ``<cache dir>/ui.json``, so that a build can link a failed step.

``mlbuild ui`` writes the file when it starts serving and removes it when it stops; a build
reads it only to print a link, and ignores it unless the process that wrote it is alive.
Nothing here imports the web framework: the build path reads this module.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import msgspec

from mlbuild.cache.processes import pid_alive
from mlbuild.engine.records import UiState

__all__ = ["UiState", "STATE_FILE", "write_state", "remove_state", "running_ui", "step_link"]

STATE_FILE = "ui.json"


def write_state(cache_dir: Path, state: UiState) -> Path:
    """Write the state file atomically (temp file + rename); returns its path."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / STATE_FILE
    tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
    tmp.write_bytes(msgspec.json.encode(state))
    os.replace(tmp, path)
    return path


def remove_state(cache_dir: Path, pid: int) -> None:
    """Remove the state file if it is still this process's (another UI may have replaced it)."""
    path = cache_dir / STATE_FILE
    state = _read(path)
    if state is not None and state.pid == pid:
        path.unlink(missing_ok=True)


def _read(path: Path) -> UiState | None:
    try:
        return msgspec.json.decode(path.read_bytes(), type=UiState)
    except (OSError, msgspec.DecodeError):
        return None



def running_ui(cache_dir: Path) -> UiState | None:
    """The UI serving this cache, if its process is alive."""
    state = _read(cache_dir / STATE_FILE)
    return state if state is not None and pid_alive(state.pid) else None


def step_link(cache_dir: Path, build_id: str, key: str | None, tab: str = "logs") -> str | None:
    """The URL of a step of a build in the running UI, or None when no UI runs."""
    state = running_ui(cache_dir)
    if state is None:
        return None
    url = f"{state.url}/builds/{quote(build_id)}" + (f"?token={quote(state.token)}" if state.token else "")
    return url + (f"#run={quote(key)}&tab={quote(tab)}" if key else "")
