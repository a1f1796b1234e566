"""Random SIGKILLs inside builds: does the next build recover, with nothing wrong on disk?

    python benchmarks/fault_injection.py [--kills N] [--workloads example,synthetic] [--keep DIR]

Two workloads, each in a fresh workspace copy with a cache of its own:

- ``example``: the ResNet example (``//models:eval``); each trial changes the split's seed, so
  split, normalize, train and eval run again.
- ``synthetic``: a generated 300-step graph (30 layers of 10; each step sums two steps of the
  layer above; every 7th step also writes a 256 KiB file). Each trial changes the root's seed,
  so all 300 steps run again; the expected value of every step is computed here.

A trial starts ``mlbuild build`` (its own process group, the local executor) and SIGKILLs the
whole group at a random moment within 1.1x the time an unkilled trial build took, so
kills land in planning, in steps, in cache writes and in materialization alike. Then it builds
again, unkilled, and counts a **failure** when that build exits non-zero, when a requested
output in ``mlbuild-out/`` differs from what the summary says it is (or, for the synthetic
graph, from the value computed here), or when ``mlbuild cache fsck --deep`` finds anything.
It prints, per workload, the kills, the failures (0 expected) and the time each recovery
build took.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import xxhash

REPO = Path(__file__).resolve().parent.parent
LAYERS, WIDTH, FILE_EVERY, FILE_SIZE = 30, 10, 7, 256 * 1024
MOD = 1_000_003

SYNTH_RULES = f'''
from pathlib import Path
from mlbuild import rule


@rule
def root(config: dict) -> int:
    return config["seed"]


@rule
def step(a: int, b: int, config: dict, out: Path) -> int:
    value = (a + b + config["j"]) % {MOD}
    if config["file"]:
        (out / "data.bin").write_bytes(value.to_bytes(4, "little") * ({FILE_SIZE} // 4))
    return value
'''


def step_name(layer: int, j: int) -> str:
    return f"s{layer}_{j}"


def synth_build_file() -> str:
    lines = ["from mlbuild import target", "", 'target(name="root", rule="rules.py:root", config={"seed": 0})']
    n = 0
    for layer in range(LAYERS):
        for j in range(WIDTH):
            if layer == 0:
                a = b = ":root"
            else:
                a, b = f":{step_name(layer - 1, j)}", f":{step_name(layer - 1, (j + 1) % WIDTH)}"
            file = n % FILE_EVERY == 0
            lines.append(f'target(name="{step_name(layer, j)}", rule="rules.py:step", '
                         f'inputs={{"a": "{a}", "b": "{b}"}}, config={{"j": {j}, "file": {file}}})')
            n += 1
    return "\n".join(lines) + "\n"


def synth_expected(seed: int) -> dict[str, int]:
    values: dict[str, int] = {}
    for layer in range(LAYERS):
        for j in range(WIDTH):
            if layer == 0:
                a = b = seed
            else:
                a, b = values[step_name(layer - 1, j)], values[step_name(layer - 1, (j + 1) % WIDTH)]
            values[step_name(layer, j)] = (a + b + j) % MOD
    return values


class Workload:
    def __init__(self, name: str, ws: Path, targets: list[str], seed_flag: str) -> None:
        self.name, self.ws, self.targets, self.seed_flag = name, ws, targets, seed_flag

    def args(self, seed: int) -> list[str]:
        return ["build", "--json", "-q", *self.targets, "--set", f"{self.seed_flag}={seed}"]

    def check_values(self, seed: int) -> list[str]:
        return []


class Synthetic(Workload):
    def check_values(self, seed: int) -> list[str]:
        expected = synth_expected(seed)
        problems = []
        out = self.ws / "mlbuild-out" / "g"
        for label in self.targets:
            name = label.split(":")[1]
            got = msgspec.msgpack.decode((out / f"{name}.value.msgpack").read_bytes())
            if got != expected[name]:
                problems.append(f"{label} holds {got}, expected {expected[name]}")
            data = out / name / "data.bin"
            if data.exists() and data.read_bytes() != expected[name].to_bytes(4, "little") * (FILE_SIZE // 4):
                problems.append(f"{label}: data.bin has the wrong bytes")
        return problems


def make_workloads(base: Path, which: list[str]) -> list[Workload]:
    loads: list[Workload] = []
    if "example" in which:
        ws = base / "example"
        shutil.copytree(REPO / "examples" / "resnet", ws, ignore=shutil.ignore_patterns("mlbuild-out", "__pycache__"))
        loads.append(Workload("example", ws, ["//models:eval"], "//data:split.seed"))
    if "synthetic" in which:
        ws = base / "synthetic"
        (ws / "g").mkdir(parents=True)
        (ws / "mlbuild.toml").write_text('[workspace]\nname = "faults"\n')
        (ws / "g" / "rules.py").write_text(SYNTH_RULES)
        (ws / "g" / "BUILD.py").write_text(synth_build_file())
        # the last layer, and every step with a file output (their copies get killed too)
        wanted = {step_name(LAYERS - 1, j) for j in range(WIDTH)}
        wanted |= {step_name(n // WIDTH, n % WIDTH) for n in range(0, LAYERS * WIDTH, FILE_EVERY)}
        loads.append(Synthetic("synthetic", ws, [f"//g:{t}" for t in sorted(wanted)], "//g:root.seed"))
    return loads


def run(ws: Path, args: list[str], env: dict[str, str], kill_after: float | None = None) -> tuple[int, str, str, float]:
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "mlbuild", *args], cwd=ws, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the build and its workers, as a machine reset would
        out, err = proc.communicate()
    return proc.returncode, out, err, time.monotonic() - started


def consistent(ws: Path, summary: dict[str, Any], cas: Path) -> list[str]:
    """Every requested output in mlbuild-out/ is exactly what the summary says it is."""
    from mlbuild.cache.trees import _tree_dec  # the tree blob's decoder

    problems = []
    for label, outputs in summary["outputs"].items():
        pkg, name = label[2:].split(":")
        base = ws / "mlbuild-out" / pkg
        for kind, digest in outputs.items():
            if kind == "value":
                path = next(base.glob(f"{name}.value.*"), None)
                if path is None or xxhash.xxh3_128_hexdigest(path.read_bytes()) != digest:
                    problems.append(f"{label}: its value file is missing or wrong")
            else:
                entries = _tree_dec.decode((cas / digest[:2] / digest).read_bytes())
                on_disk = sorted(p.relative_to(base / name).as_posix() for p in (base / name).rglob("*") if p.is_file())
                if on_disk != sorted(e.path for e in entries):
                    problems.append(f"{label}: its files folder holds {on_disk}")
                for e in entries:
                    f = base / name / e.path
                    if f.exists() and xxhash.xxh3_128_hexdigest(f.read_bytes()) != e.digest:
                        problems.append(f"{label}: {e.path} has the wrong bytes")
    return problems


def trial_problems(load: Workload, seed: int, env: dict[str, str], cache: Path) -> tuple[list[str], float]:
    code, out, err, seconds = run(load.ws, load.args(seed), env)
    if code != 0:
        return [f"recovery build exited {code}: {err.strip().splitlines()[-1:] }"], seconds
    problems = consistent(load.ws, json.loads(out.strip().splitlines()[-1]), cache / "cas")
    problems += load.check_values(seed)
    fsck = subprocess.run([sys.executable, "-m", "mlbuild", "cache", "fsck", "--deep"], cwd=load.ws, env=env,
                          capture_output=True, text=True)
    if fsck.returncode != 0:
        problems.append("fsck: " + fsck.stdout.strip().replace("\n", " | "))
    return problems, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=10, help="SIGKILLs per workload (default 10)")
    ap.add_argument("--workloads", default="example,synthetic")
    ap.add_argument("--seed", type=int, default=1, help="of the random kill times")
    ap.add_argument("--keep", type=Path, default=None, help="work here and keep it (default: a temp dir)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    base = args.keep or Path(tempfile.mkdtemp(prefix="mlbuild-faults-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        for load in make_workloads(base, args.workloads.split(",")):
            cache = base / f"{load.name}-cache"
            env = {**os.environ, "MLBUILD_CACHE_DIR": str(cache)}
            code, _, err, clean = run(load.ws, load.args(0), env)
            assert code == 0, err
            problems, _ = trial_problems(load, 0, env, cache)
            assert not problems, problems
            # What one trial's build costs (less than the first: what no seed changes is cached);
            # kills are spread over it.
            code, _, err, per_trial = run(load.ws, load.args(10**6), env)
            assert code == 0, err
            killed = failures = 0
            recoveries: list[float] = []
            for trial in range(1, args.kills + 1):
                seed = trial
                at = rng.uniform(0.05, 1.1) * per_trial
                code, _, _, _ = run(load.ws, load.args(seed), env, kill_after=at)
                killed += code == -signal.SIGKILL
                problems, seconds = trial_problems(load, seed, env, cache)
                recoveries.append(seconds)
                if problems:
                    failures += 1
                    print(f"  {load.name} trial {trial} (kill at {at:.2f}s): FAILED: " + "; ".join(problems[:3]))
            print(f"{load.name}: clean build {clean:.1f}s, a trial's build {per_trial:.1f}s; {args.kills} trials, "
                  f"{killed} killed mid-build, "
                  f"{failures} failures; recovery build median {statistics.median(recoveries):.1f}s, "
                  f"max {max(recoveries):.1f}s")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
