"""LMDB index handles left open by commands that ran in the test's own process."""

from __future__ import annotations

import sys


def close_opened_since(before: dict[str, int]) -> None:
    """Close the LMDB handles opened since ``before`` (``snapshot()``) and left open.

    A command's store lives as long as its process; when the command ran in the test's process,
    the process goes on, and each test's cache would keep two descriptors and a 64 GiB mapping
    until the session ends. Handles open before (a module's fixture) keep their users.
    """
    index = sys.modules.get("mlbuild.cache.index")
    open_handles = getattr(index, "_open", None)
    if open_handles is None:  # nothing opened an index, or the store keeps its handles elsewhere
        return
    for path, entry in list(open_handles.items()):
        users = before.get(path, 0)
        if users == 0:
            del open_handles[path]
            entry[0].close()
        else:
            entry[2] = users


def snapshot() -> dict[str, int]:
    """The LMDB environments open in this process: path -> how many Index objects use it."""
    index = sys.modules.get("mlbuild.cache.index")
    return {path: entry[2] for path, entry in getattr(index, "_open", {}).items()}
