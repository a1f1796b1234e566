"""Who built what, where: the facts a build record carries about its invocation."""

from __future__ import annotations

import getpass
import os
import secrets
import socket
import subprocess
import time
from pathlib import Path

from mlbuild.cache.processes import pid_alive

OUTPUT_DIR = "mlbuild-out"  # as in engine/plan/workspace.py (not imported: this stays light)


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


def workspace_id(name: str, root: Path | str) -> str:
    """A workspace's stable identity: its ``mlbuild.toml`` name and its root folder.

    Builds of two checkouts that share one cache (the default) are told apart by it; the name
    is part of it so that a workspace renamed in place starts a new history.
    """
    from mlbuild.cache.digest import digest_value

    return digest_value(["workspace", name, str(Path(root).resolve())])[:16]


def process_identity(pid: int | None = None) -> str:
    """What tells process ``pid`` (default: this one) apart from a later process reusing its pid:
    the boot id and the process's start time in clock ticks. "" where /proc does not say."""
    pid = os.getpid() if pid is None else pid
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: count from the last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    return f"{boot}:{fields[19]}"


def process_alive(pid: int, identity: str) -> bool:
    """Whether process ``pid`` on this host is still the one whose identity was recorded."""
    if pid <= 0:
        return False
    if identity:
        return process_identity(pid) == identity
    return pid_alive(pid)


def git_state(path: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout holding ``path``, or (None, None).

    Untracked files make a tree dirty (a build reads files git does not know of just as well);
    the build's own outputs under ``mlbuild-out/`` do not.
    """
    if not any((d / ".git").exists() for d in (path, *path.parents)):
        return None, None
    try:
        commit = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=normal", "--",
             ".", f":(exclude,glob)**/{OUTPUT_DIR}/**"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return commit.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        return None, None
