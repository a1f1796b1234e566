"""What verified keys cost: traces on every step, checked on every hit. Printed side by side
with another checkout of mlbuild (today's, before traces), nothing asserted.

    python benchmarks/keys_speed.py --base /path/to/old/checkout [--sizes 1000 10000] [--skip-example]

For each checkout (its own cache, its own copy of each workspace):

- the example's no-op ``mlbuild //models:eval`` (best and median of 5), and whether torch was
  imported by it (it must not be);
- the trace check alone: an in-process no-op of 2,000 steps, CPU seconds, with every hit's
  trace checked and with the checks stubbed out;
- the runner alone: one trivial action run in-process N times (what a pool worker does per
  action), best of three interleaved rounds: the tracing overhead without process noise;
- a synthetic chain of N trivial steps (benchmarks/synth.py): cold build, no-op, and the
  per-action overhead ``(cold - no-op) / N`` (each step is ``x + 1``: what is left is the
  engine's cost per executed action, tracing included).

Targets (issue 11): example no-op well under 0.3 s without torch, 10,000-step no-op under 1 s,
per-action overhead at most 1 ms more than the base's.
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
# Runs the CLI in-process and says whether torch got imported (a no-op must not import it).
# The command's own entry point (console_main where the checkout has it: it skips the final
# collection at exit, which is part of what a user waits for).
NOOP_PROBE = ("import sys; import mlbuild.engine.cli as cli; rc = (getattr(cli, 'console_main', None) or cli.main)();"
              " print('TORCH', 'torch' in sys.modules); raise SystemExit(rc)")


def checkout_env(repo: Path, tmp: Path, name: str) -> dict[str, str]:
    """An environment whose ``import mlbuild`` is ``repo`` (a folder holding a link named mlbuild)."""
    pkg = tmp / f"pkg-{name}"
    pkg.mkdir(exist_ok=True)
    link = pkg / "mlbuild"
    if not link.exists():
        link.symlink_to(repo)
    return dict(os.environ, PYTHONPATH=str(pkg))


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds and stdout; the CPU seconds (user + system of the command and its workers,
    which swing far less than wall time on a loaded machine) go to ``LAST_CPU``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU[:] = [(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)]
    return wall, proc.stdout


LAST_CPU: list[float] = [0.0]


def mlbuild(*args: str) -> list[str]:
    return [sys.executable, "-c", NOOP_PROBE, *args]


def example(tmp: Path, name: str, env: dict[str, str], repo: Path) -> str:
    ws = tmp / f"resnet-{name}"
    shutil.copytree(repo / "examples" / "resnet", ws, ignore=shutil.ignore_patterns("mlbuild-out"))
    env = dict(env, MLBUILD_CACHE_DIR=str(tmp / f"cache-example-{name}"))
    cold, _ = timed(mlbuild("//models:eval", "-q"), ws, env)
    runs, cpus = [], []
    for _ in range(5):
        runs.append(timed(mlbuild("//models:eval", "-q"), ws, env))
        cpus.append(LAST_CPU[0])
    times = [t for t, _ in runs]
    torch = any("TORCH True" in out for _, out in runs)
    return (f"cold {cold:6.2f} s | no-op best {min(times):.3f} s, median {statistics.median(times):.3f} s,"
            f" cpu best {min(cpus):.3f} s | torch imported: {torch}")


def synthetic(tmp: Path, name: str, env: dict[str, str], n: int) -> str:
    ws = tmp / f"ws-{name}-{n}"
    generate(ws, n, "chain")
    env = dict(env, MLBUILD_CACHE_DIR=str(tmp / f"cache-{name}-{n}"))
    build = mlbuild("//...", "-q", "-j", str(os.cpu_count() or 1))
    cold, _ = timed(build, ws, env)
    cold_cpu = LAST_CPU[0]
    noops, noop_cpus = [], []
    for _ in range(5):  # this machine swings by a quarter between identical runs
        noops.append(timed(build, ws, env)[0])
        noop_cpus.append(LAST_CPU[0])
    per_action = (cold - statistics.median(noops)) / n * 1000
    per_action_cpu = (cold_cpu - min(noop_cpus)) / n * 1000
    return (f"cold {cold:7.2f} s | no-op best {min(noops):.3f} s, median {statistics.median(noops):.3f} s, cpu best"
            f" {min(noop_cpus):.3f} s | per-action overhead {per_action:.2f} ms wall, {per_action_cpu:.2f} ms cpu")


# Runs one trivial action N times in this process through the checkout's runner (the work a
# pool worker does per action), after a warm-up; prints microseconds per action.
RUNNER_PROBE = """
import sys, time
from pathlib import Path
from mlbuild.cache.store import LocalStore
from mlbuild.engine.keys.actions import ActionFactory
from mlbuild.engine.plan.planner import plan, resolve_patterns
from mlbuild.engine.plan.workspace import Workspace
from mlbuild.engine.run.runner import run_action

root, n = Path(sys.argv[1]), int(sys.argv[2])
if sys.argv[3:] == ["notrace"]:  # the same checkout with tracing stubbed out: what tracing costs
    import contextlib
    import mlbuild.engine.run.runner as runner
    from mlbuild.cache.records import Trace

    class NoTrace(contextlib.nullcontext):
        def __init__(self, *a, **k):
            super().__init__()
        def finish(self):
            return Trace()
        def changed_during_run(self):
            return []
    runner.ActionTrace = NoTrace
ws = Workspace(root)
store = LocalStore(root.parent / ("cache-probe-" + root.name))
label = resolve_patterns(ws, ["//p0000:t0"])[0]
target = plan(ws, [label]).targets[label]
factory = ActionFactory(ws, store)
key_spec, info, env = factory.key_spec(target, {}, target.config)
spec = factory.action_spec(target, key_spec, info, env, {})
for _ in range(20):
    assert run_action(spec, store.cas).error is None
best = []
for _ in range(5):
    t = time.perf_counter()
    for _ in range(n):
        run_action(spec, store.cas)
    best.append((time.perf_counter() - t) / n)
print(f"{min(best) * 1e6:.0f}")
"""


# A no-op of N steps in-process, CPU seconds, with the trace checks and with them stubbed out:
# what checking every hit's trace costs (the checkout's cold build runs inline first).
HIT_PROBE = """
import contextlib, io, sys, time
from mlbuild.engine.run.api import build
from mlbuild.engine.run.settings import BuildSettings
import mlbuild.engine.keys.actions as actions

ws, cache, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def run(executor=None):
    settings = BuildSettings(targets=["//..."], directory=ws, cache_dir=cache, materialize=False, quiet=True, executor=executor)
    t = time.process_time()
    with contextlib.redirect_stderr(io.StringIO()):
        build(settings)
    return time.process_time() - t
run("inline")
run()
checked = min(run() for _ in range(3))
actions.ActionFactory.trace_problem = lambda self, target, result: None
unchecked = min(run() for _ in range(3))
print(f"{checked:.3f} {unchecked:.3f}")
"""


def hit_checks(tmp: Path, env: dict[str, str], n: int) -> str:
    ws = tmp / f"hits-{n}"
    generate(ws, n, "chain")
    out = subprocess.run([sys.executable, "-c", HIT_PROBE, str(ws), str(tmp / f"cache-hits-{n}"), str(n)], env=env, check=True, capture_output=True, text=True)
    checked, unchecked = map(float, out.stdout.split())
    return (f"in-process no-op of {n} steps, CPU: {checked:.3f} s with every hit's trace checked, {unchecked:.3f} s"
            f" with the checks stubbed ({(checked - unchecked) / n * 1e6:+.1f} us per hit)")


def runner_per_action(tmp: Path, name: str, env: dict[str, str], n: int = 300, notrace: bool = False) -> float:
    ws = tmp / f"probe-{name}{'-notrace' if notrace else ''}"
    if not ws.exists():
        generate(ws, 1, "chain")
    extra = ["notrace"] if notrace else []
    out = subprocess.run([sys.executable, "-c", RUNNER_PROBE, str(ws), str(n), *extra], env=env, check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def calibration() -> float:
    """Seconds for a fixed pure-Python loop, best of three: a virtual machine's speed can swing
    by a third over minutes, so absolute figures from two runs compare only through this."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        total = 0
        for i in range(3_000_000):
            total += i
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=Path, required=True, help="a checkout to compare with (e.g. a worktree of 34c0cad)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--skip-example", action="store_true")
    ap.add_argument("--only-runner", action="store_true", help="just the in-process per-action figure")
    args = ap.parse_args()
    checkouts = {"base": args.base.resolve(), "now": REPO}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        envs = {name: checkout_env(repo, tmp, name) for name, repo in checkouts.items()}
        # Interleaved, best of three rounds: the machine's load changes between runs.
        rounds: dict[str, list[float]] = {"base": [], "now": [], "now-notrace": []}
        for _ in range(3):
            rounds["base"].append(runner_per_action(tmp, "base", envs["base"]))
            rounds["now"].append(runner_per_action(tmp, "now", envs["now"]))
            rounds["now-notrace"].append(runner_per_action(tmp, "now", envs["now"], notrace=True))
        base_us, now_us, bare_us = min(rounds["base"]), min(rounds["now"]), min(rounds["now-notrace"])
        print(
            f"runner, one trivial action in-process: base {base_us:.0f} us, now {now_us:.0f} us, now with tracing"
            f" stubbed {bare_us:.0f} us -> tracing costs {now_us - bare_us:.0f} us per action",
            flush=True,
        )
        print(hit_checks(tmp, envs["now"], 2000), flush=True)
        if args.only_runner:
            return
        if not args.skip_example:
            for name, repo in checkouts.items():
                print(f"example //models:eval [{name:4s}]: {example(tmp, name, envs[name], repo)}", flush=True)
        for n in args.sizes:
            for name in checkouts:
                print(f"chain N={n:6d}      [{name:4s}]: {synthetic(tmp, name, envs[name], n)}", flush=True)
            print(f"machine speed now: {calibration():.3f} s for a fixed pure-Python loop (compare runs by it)", flush=True)


if __name__ == "__main__":
    main()
