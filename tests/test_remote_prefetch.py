"""A build takes a wide level of the graph from the remote with overlapping lookups, and asks
the remote nothing that the local cache has."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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

# Runs the build in-process with the remote's lookups slowed down and instrumented: how many
# were in flight at once, and how many there were.
PROBE = '''
import json, sys, threading, time
from mlbuild.engine.cli import main
from mlbuild.remote import fsspec_cache

get_action = fsspec_cache.FsspecRemoteCache.get_action
lock = threading.Lock()
state = {"now": 0, "most": 0, "calls": 0}

def instrumented(self, key):
    with lock:
        state["now"] += 1
        state["calls"] += 1
        state["most"] = max(state["most"], state["now"])
    time.sleep(0.05)
    try:
        return get_action(self, key)
    finally:
        with lock:
            state["now"] -= 1

fsspec_cache.FsspecRemoteCache.get_action = instrumented
code = main([*sys.argv[2:], "-q", "--remote-cache", sys.argv[1]])
print(json.dumps(state))
sys.exit(code)
'''


def build(ws: Path, cache: Path, remote: str, targets: list[str]) -> dict[str, int]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, remote, *targets], cwd=ws, capture_output=True, text=True,
        env={**__import__("os").environ, "MLBUILD_CACHE_DIR": str(cache)}, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_lookups_overlap_and_local_hits_ask_nothing(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "p").mkdir(parents=True)
    (ws / "mlbuild.toml").write_text("")
    (ws / "rules.py").write_text(RULES)
    (ws / "p" / "BUILD.py").write_text(BUILD)
    remote = f"file://{tmp_path / 'remote'}"
    ends = [f"//p:t2_{j}" for j in range(20)]
    build(ws, tmp_path / "publisher", remote, ends)

    fresh = build(ws, tmp_path / "fresh", remote, ends)
    assert fresh["calls"] == 60  # every action looked up once
    assert fresh["most"] > 1  # ... and not one round trip after another

    again = build(ws, tmp_path / "fresh", remote, ends)  # everything is local now
    assert again["calls"] == 0
