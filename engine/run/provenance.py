"""Who built what, where: the facts a build record carries about its invocation."""

from __future__ import annotations

import getpass
import os
import secrets
import socket
import subprocess
import time
from pathlib import Path


def new_build_id(now: float | None = None) -> str:
    """Sortable by start time, unique across machines."""
    t = time.gmtime(now or time.time())
    return time.strftime("%Y%m%d-%H%M%S", t) + "-" + secrets.token_hex(3)


def user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid())


def host() -> str:
    return socket.gethostname()


def git_state(path: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout holding ``path``, or (None, None)."""
    if not any((d / ".git").exists() for d in (path, *path.parents)):
        return None, None
    try:
        commit = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no", "."],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return commit.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        return None, None
