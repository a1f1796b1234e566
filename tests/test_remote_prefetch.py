"""A build takes a wide level of the graph from the remote with overlapping lookups, and asks
the remote nothing that the local cache has."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mlbuild.remote.fsspec_cache import FsspecRemoteCache

from support.cli import mlbuild
from support.workspace import write_workspace

BUILD = '''from mlbuild import target
for j in range(20):
    for i in range(3):
        target(name=f"t{i}_{j}", rule="//rules.py:step",
               inputs={"prev": f":t{i - 1}_{j}"} if i else {}, config={"i": i * 100 + j})
'''

RULES = '''from mlbuild import rule


@rule
def step(config: dict, prev: int = 0) -> int:
    return prev + 1
'''


class Lookups:
    """The remote's lookups, slowed down and counted: how many there were, and how many were
    in flight at once."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lock = threading.Lock()
        self.now = self.most = self.calls = 0
        get_action = FsspecRemoteCache.get_action

        def instrumented(cache: FsspecRemoteCache, key: str) -> Any:
            with self.lock:
                self.now += 1
                self.calls += 1
                self.most = max(self.most, self.now)
            time.sleep(0.05)
            try:
                return get_action(cache, key)
            finally:
                with self.lock:
                    self.now -= 1

        monkeypatch.setattr(FsspecRemoteCache, "get_action", instrumented)

    def build(self, ws: Path, cache: Path, remote: str, targets: list[str]) -> dict[str, int]:
        """Build ``targets`` (in this process, so the instrumented lookups are the ones used)."""
        self.now = self.most = self.calls = 0
        mlbuild(ws, *targets, "-q", "--remote-cache", remote, env={"MLBUILD_CACHE_DIR": str(cache)})
        return {"calls": self.calls, "most": self.most}


def test_lookups_overlap_and_local_hits_ask_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = write_workspace(tmp_path / "ws", {"mlbuild.toml": "", "rules.py": RULES, "p/BUILD.py": BUILD})
    remote = f"file://{tmp_path / 'remote'}"
    ends = [f"//p:t2_{j}" for j in range(20)]
    lookups = Lookups(monkeypatch)
    lookups.build(ws, tmp_path / "publisher", remote, ends)

    fresh = lookups.build(ws, tmp_path / "fresh", remote, ends)
    assert fresh["calls"] == 60  # every action looked up once
    assert fresh["most"] > 1  # ... and not one round trip after another

    again = lookups.build(ws, tmp_path / "fresh", remote, ends)  # everything is local now
    assert again["calls"] == 0
