"""How fast ``lineage``, ``why`` and ``consumers`` answer, printed (nothing is asserted).

    python benchmarks/lineage_speed.py [--n 10000] [--skip-example]

On a copy of the ResNet example (built once) and on a synthetic chain of N targets built
twice — the second time after a change to the helper every step calls, so that ``why`` on the
last target explains N rebuilds each caused by that change and by its input. Each figure is
the best of 3 in-process calls (the library functions the CLI and the UI call) and one
``mlbuild`` CLI run (process start included). Targets: under 0.3 s on the example, under 2 s
on 10,000 targets.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from synth import generate  # noqa: E402

from mlbuild.cache.store import LocalStore  # noqa: E402
from mlbuild.engine.inspect.lineage import consumers, lineage_tree, resolve_key  # noqa: E402
from mlbuild.engine.inspect.why import explain_dry_run, explain_target  # noqa: E402
from mlbuild.engine.plan.workspace import Workspace  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def best(fn: Callable[[], Any], times: int = 3) -> tuple[float, Any]:
    out, results = [], None
    for _ in range(times):
        t = time.perf_counter()
        results = fn()
        out.append(time.perf_counter() - t)
    return min(out), results


def cli(args: list[str], ws: Path, cache: Path) -> float:
    env = dict(os.environ, MLBUILD_CACHE_DIR=str(cache))
    t = time.perf_counter()
    subprocess.run(["mlbuild", *args], cwd=ws, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def build(ws: Path, cache: Path, pattern: str) -> float:
    env = dict(os.environ, MLBUILD_CACHE_DIR=str(cache))
    t = time.perf_counter()
    subprocess.run(["mlbuild", pattern, "-q", "-j", str(os.cpu_count() or 1)], cwd=ws, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def measure(name: str, ws: Path, cache: Path, label: str, digest_of: str) -> None:
    store = LocalStore(cache)
    try:
        rows: list[tuple[str, float, str]] = []
        t, tree = best(lambda: lineage_tree(store, resolve_key(store, label)))
        rows.append((f"lineage {label}", t, f"{len(tree.nodes)} actions"))
        t, expl = best(lambda: explain_target(store, label))
        rebuilt = sum(a.verdict == "rebuilt" for a in expl.actions)
        rows.append((f"why {label}", t, f"{len(expl.actions)} actions, {rebuilt} rebuilt"))
        t, dry = best(lambda: explain_dry_run(Workspace(ws), store, label), times=1)
        rows.append((f"why --dry-run {label}", t, f"{sum(a.verdict == 'would_rebuild' for a in dry.actions)} would rebuild"))
        up = store.index.get_action(resolve_key(store, digest_of))
        assert up is not None
        t, found = best(lambda: consumers(store, up.result_digest(), depth=None))
        rows.append((f"transitive consumers of {digest_of}", t, f"{len(found)} actions"))
    finally:
        store.close()
    for what, seconds, note in rows:
        print(f"{name:8s} {what:55s} {seconds:7.3f} s   ({note})")
    print(f"{name:8s} {'CLI: mlbuild lineage ' + label:55s} {cli(['lineage', label], ws, cache):7.3f} s")
    print(f"{name:8s} {'CLI: mlbuild why ' + label:55s} {cli(['why', label], ws, cache):7.3f} s")


def example(tmp: Path) -> None:
    ws, cache = tmp / "resnet", tmp / "cache-example"
    shutil.copytree(REPO / "examples" / "resnet", ws, ignore=shutil.ignore_patterns("mlbuild-out", "__pycache__"))
    build(ws, cache, "//models:eval")
    measure("example", ws, cache, "//models:eval", "//data:digits")


def chain(tmp: Path, n: int) -> None:
    ws, cache = tmp / f"chain-{n}", tmp / f"cache-chain-{n}"
    labels = generate(ws, n, "chain")
    first = build(ws, cache, "//...")
    rules = ws / "rules.py"
    rules.write_text(rules.read_text().replace("return x + 1", "return x + 2"))
    second = build(ws, cache, "//...")
    print(f"chain    built {n} targets twice (cold {first:.1f} s, after the helper change {second:.1f} s)")
    measure(f"N={n}", ws, cache, labels[-1], labels[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--skip-example", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlbuild-lineage-bench-") as d:
        tmp = Path(d)
        if not args.skip_example:
            example(tmp)
        chain(tmp, args.n)


if __name__ == "__main__":
    main()
