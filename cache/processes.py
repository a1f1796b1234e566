"""Whether a process on this host still exists: used to tell the temp files, live logs and
records of a killed process from those of one still running."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while a process ``pid`` exists on this host (under any user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True
