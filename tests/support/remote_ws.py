"""Helpers for the remote-cache tests: a small workspace and the CLI run in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

RULES = '''
from pathlib import Path
from mlbuild import rule


@rule
def source(config: dict) -> list:
    return list(range(config["n"]))


@rule
def features(numbers: list, out: Path) -> None:
    # a bulky intermediate: a build of :model elsewhere must not download it
    for i in numbers:
        (out / f"part-{i}.bin").write_bytes(bytes([i % 256]) * 50_000)


@rule
def model(features: Path) -> dict:
    sizes = sorted(p.stat().st_size for p in features.iterdir())
    return {"parts": len(sizes), "bytes": sum(sizes)}


@rule(allow_pickle=True)
def odd(numbers: list) -> complex:
    return complex(len(numbers), 1)


@rule
def gated(numbers: list) -> int:
    # waits (bounded) until the test opens the gate: lets a test act in the middle of a build
    import os, time
    gate = Path(os.environ["REMOTE_TEST_GATE"])
    deadline = time.monotonic() + 120
    while not gate.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never opened the gate")
        time.sleep(0.05)
    return sum(numbers)


@rule
def after(total: int) -> int:
    return total + 1
'''

BUILD = '''
from mlbuild import target

target(name="source", rule="rules.py:source", config={"n": 4})
target(name="features", rule="rules.py:features", inputs={"numbers": ":source"})
target(name="model", rule="rules.py:model", inputs={"features": ":features"})
target(name="odd", rule="rules.py:odd", inputs={"numbers": ":source"})
target(name="gated", rule="rules.py:gated", inputs={"numbers": ":source"})
target(name="after", rule="rules.py:after", inputs={"total": ":gated"})
'''


def write_workspace(root: Path) -> Path:
    (root / "pipe").mkdir(parents=True)
    (root / "mlbuild.toml").write_text('[workspace]\nname = "remote-test"\n')
    (root / "pipe" / "BUILD.py").write_text(BUILD)
    (root / "pipe" / "rules.py").write_text(RULES)
    return root



def mlbuild(ws: Path, *args: str, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the CLI in ``ws`` with a cache dir of its own (``<ws>/.cache-dir``)."""
    full_env = {**os.environ, "MLBUILD_CACHE_DIR": str(ws.parent / f"{ws.name}-cache"), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "mlbuild", *args], cwd=ws, capture_output=True,
                          text=True, timeout=300, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"mlbuild {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def build(ws: Path, *args: str, env: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    """``mlbuild build ARGS --json``: the JSON summary and stderr."""
    proc = mlbuild(ws, "build", *args, "--json", env=env)
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def remote_files(url: str, kind: str) -> list[Path]:
    root = Path(url.removeprefix("file://")) / kind
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
