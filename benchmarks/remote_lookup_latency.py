"""How much a remote's latency costs a cold build that takes everything from it.

    python benchmarks/remote_lookup_latency.py [--latency 0.02]

A workspace of 100 chains of 10 trivial targets is built once to publish it to a file://
remote; then fresh caches build the 100 chain ends from that remote with every action-cache
lookup delayed by ``--latency`` seconds (standing in for a network round trip), once with the
build's background lookups and once one lookup at a time. Prints both times.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUILD = '''from mlbuild import target
for j in range(100):
    for i in range(10):
        target(name=f"t{i}_{j}", rule="//rules.py:step",
               inputs={"prev": f":t{i - 1}_{j}"} if i else {}, config={"i": i * 1000 + j})
'''

RULES = '''from mlbuild import rule


@rule
def step(config: dict, prev: int = 0) -> int:
    return prev + 1
'''

TARGETS = [f"//p:t9_{j}" for j in range(100)]


def build(ws: Path, cache: Path, remote: str, latency: float, background: bool) -> tuple[float, str]:
    code = (
        "import sys, time\n"
        "from mlbuild.engine.cli import main\n"
        "from mlbuild.remote import fsspec_cache\n"
        "get_action = fsspec_cache.FsspecRemoteCache.get_action\n"
        f"def delayed(self, key):\n    time.sleep({latency})\n    return get_action(self, key)\n"
        "fsspec_cache.FsspecRemoteCache.get_action = delayed\n"
    )
    if not background:
        code += "from mlbuild.engine.run import remote_session\nremote_session.RemoteSession.prefetch = lambda self, keys: None\n"
    code += f"sys.exit(main([*{TARGETS!r}, '-q', '--remote-cache', {remote!r}]))"
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ws, env=dict(os.environ, MLBUILD_CACHE_DIR=str(cache)),
                          capture_output=True, text=True, check=True)
    return time.perf_counter() - t, proc.stderr.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--latency", type=float, default=0.02)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ws = tmp / "ws"
        (ws / "p").mkdir(parents=True)
        (ws / "mlbuild.toml").write_text("")
        (ws / "rules.py").write_text(RULES)
        (ws / "p" / "BUILD.py").write_text(BUILD)
        remote = f"file://{tmp / 'remote'}"
        build(ws, tmp / "publisher", remote, 0.0, True)
        for run, background in enumerate([False, True, False, True]):
            seconds, summary = build(ws, tmp / f"fresh-{run}", remote, args.latency, background)
            how = "background lookups" if background else "one lookup at a time"
            print(f"{how:22s} {seconds:6.2f} s   ({summary.split(';')[0]})")


if __name__ == "__main__":
    main()
