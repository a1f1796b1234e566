"""mlbuild's scheduling overhead on top of Ray: a fan-out of N trivial steps.

    python benchmarks/ray_overhead.py [--steps 1000] [--cpus 2] [--repeat 1]

In one process, on one local Ray (started once, workers warmed up first), it times:

- **plain Ray**: the same work as Ray tasks — the step function of ``benchmarks/synth.py``
  called once for the root and once per dependent, each dependent taking the root's result;
- **mlbuild**: the build of ``//... --executor ray`` (as the CLI runs it) on the synthetic
  fan-out workspace of ``synth.py`` with an empty cache: loading the workspace, planning, keys,
  the Ray tasks (each running the step through mlbuild's runner against the CAS), and recording
  every result in the action cache. Writing the 1,000 requested outputs to ``mlbuild-out/`` is
  not scheduling; it is timed separately, as a third line.

and prints both and their ratio (the target is under 2x). Timings vary with the machine's load;
compare runs made one after the other.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synth import generate  # noqa: E402  (benchmarks/ is not a package)


def bump(x: int) -> int:
    return x + 1


def step(config: dict[str, int], prev: int = 0) -> int:
    """What every synthetic step computes (``rules.py:step`` of synth.py)."""
    return bump(prev) + config["i"] * 0


def plain_ray(ray: Any, n: int) -> float:
    task = ray.remote(num_cpus=1)(step)
    started = time.perf_counter()
    root = task.remote({"i": 0})
    results = ray.get([task.remote({"i": i}, root) for i in range(1, n)])
    elapsed = time.perf_counter() - started
    assert results == [2] * (n - 1)
    return elapsed


@contextlib.contextmanager
def chdir(path: Path) -> Any:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def mlbuild_on_ray(n: int, root: Path, materialize: bool) -> float:
    from mlbuild.engine import BuildSettings, build

    ws = root / f"ws-{time.monotonic_ns()}"
    generate(ws, n, "fanout")
    os.environ["MLBUILD_CACHE_DIR"] = str(root / f"cache-{time.monotonic_ns()}")
    settings = BuildSettings(targets=["//..."], directory=str(ws), executor="ray", quiet=True, materialize=materialize)
    started = time.perf_counter()
    result = build(settings)
    elapsed = time.perf_counter() - started
    if result.failures or result.counts()["executed"] != n:
        raise SystemExit(f"the mlbuild build failed: {result.failures}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="measure each side this many times; report the best")
    args = ap.parse_args()

    import logging

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    t0 = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level=logging.WARNING, address="local")
    print(f"ray.init: {time.perf_counter() - t0:.1f}s ({args.cpus} CPUs)")
    try:
        warm = ray.remote(num_cpus=1)(step)
        ray.get([warm.remote({"i": i}) for i in range(4 * args.cpus)])  # start the workers
        with tempfile.TemporaryDirectory(prefix="mlbuild-ray-bench-") as tmp:
            plain = min(plain_ray(ray, args.steps) for _ in range(args.repeat))
            ours = min(mlbuild_on_ray(args.steps, Path(tmp), False) for _ in range(args.repeat))
            with_outputs = min(mlbuild_on_ray(args.steps, Path(tmp), True) for _ in range(args.repeat))
    finally:
        ray.shutdown()
    n = args.steps
    print(f"plain Ray tasks : {plain:7.2f}s  ({plain / n * 1000:.2f} ms/step)")
    print(f"mlbuild on Ray  : {ours:7.2f}s  ({ours / n * 1000:.2f} ms/step)")
    print(f"ratio           : {ours / plain:7.2f}x  (target < 2x) for a fan-out of {n} trivial steps")
    print(f"mlbuild on Ray, also writing all {n} outputs to mlbuild-out/: {with_outputs:.2f}s "
          f"({with_outputs / plain:.2f}x)")


if __name__ == "__main__":
    main()
