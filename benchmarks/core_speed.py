"""The core's speed figures, printed (nothing is asserted; these machines are noisy).

    python benchmarks/core_speed.py [--sizes 1000 10000] [--skip-example]

Prints, for synthetic workspaces of N trivial targets (chain and fan-out): cold build time,
no-op rebuild time and per-action overhead; xxh3 hashing throughput of a 1 GiB file against
``cat FILE > /dev/null``; ``mlbuild --version``; a no-op ``mlbuild //models:eval`` of the
example. Targets: no-op of 10,000 under 1 s, per-action overhead under 2 ms, hashing at 80%
or more of the read speed, --version under 150 ms, no-op example under 0.5 s.

Each synthetic line also gives the CPU time (user + system) the build process spent: on a
machine shared with other work, wall times swing with the load, CPU time much less, so compare
those when comparing two versions (run them interleaved).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synth import generate  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    return timed_cpu(cmd, cwd, env)[0]


def timed_cpu(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds, and CPU seconds (user + system) of the command and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def best_of(n: int, cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    times = [timed(cmd, cwd, env) for _ in range(n)]
    return min(times), statistics.median(times)


def synthetic(tmp: Path, n: int, shape: str) -> None:
    ws = tmp / f"ws-{shape}-{n}"
    generate(ws, n, shape)  # type: ignore[arg-type]
    env = dict(os.environ, MLBUILD_CACHE_DIR=str(tmp / f"cache-{shape}-{n}"))
    build = ["mlbuild", "//...", "-q", "-j", str(os.cpu_count() or 1)]
    cold, cold_cpu = timed_cpu(build, ws, env)
    noops = [timed_cpu(build, ws, env) for _ in range(3)]
    noop_best, noop_median = min(w for w, _ in noops), statistics.median(w for w, _ in noops)
    noop_cpu = min(c for _, c in noops)
    # The step itself is a function returning x + 1: its own time is negligible, so the cold
    # build's time minus a no-op's is what the engine spends executing N actions.
    per_action_ms = (cold - noop_median) / n * 1000
    per_action_cpu_ms = (cold_cpu - noop_cpu) / n * 1000
    print(f"{shape:7s} N={n:6d}: cold {cold:7.2f} s   no-op {noop_best:.3f} s (median {noop_median:.3f})   per-action overhead {per_action_ms:.2f} ms"
          f"   | CPU: cold {cold_cpu:.2f} s, no-op {noop_cpu:.3f} s, per action {per_action_cpu_ms:.2f} ms")


def hashing(tmp: Path) -> None:
    path = tmp / "big.bin"
    with open(path, "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(1024):
            f.write(block)
    from mlbuild.cache.digest import digest_file

    cat = min(timed(["sh", "-c", f"cat {path} > /dev/null"], tmp, dict(os.environ)) for _ in range(3))
    hs = []
    for _ in range(3):
        t = time.perf_counter()
        digest_file(path)
        hs.append(time.perf_counter() - t)
    h = min(hs)
    print(f"hash 1 GiB (page cache warm): xxh3 {1 / h:.2f} GiB/s, cat {1 / cat:.2f} GiB/s, ratio {cat / h:.0%} of read speed")
    path.unlink()


def startup(tmp: Path) -> None:
    best, median = best_of(10, ["mlbuild", "--version"], tmp, dict(os.environ))
    print(f"mlbuild --version: best {best * 1000:.0f} ms, median {median * 1000:.0f} ms")


def example(tmp: Path) -> None:
    ws = tmp / "resnet"
    shutil.copytree(REPO / "examples" / "resnet", ws, ignore=shutil.ignore_patterns("mlbuild-out"))
    env = dict(os.environ, MLBUILD_CACHE_DIR=str(tmp / "cache-example"))
    cold = timed(["mlbuild", "//models:eval", "-q"], ws, env)
    best, median = best_of(5, ["mlbuild", "//models:eval", "-q"], ws, env)
    print(f"example //models:eval: cold {cold:.2f} s, no-op best {best:.3f} s (median {median:.3f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--skip-example", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        startup(tmp)
        hashing(tmp)
        if not args.skip_example:
            example(tmp)
        for n in args.sizes:
            for shape in ("chain", "fanout"):
                synthetic(tmp, n, shape)


if __name__ == "__main__":
    main()
