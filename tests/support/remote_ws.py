"""The remote-cache tests' small workspace, and the CLI run in it with a cache of its own."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from support import cli
from support.workspace import write_workspace as _write

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
    return _write(root, {"pipe/BUILD.py": BUILD, "pipe/rules.py": RULES}, name="remote-test")


def mlbuild(ws: Path, *args: str, env: Mapping[str, str] | None = None, check: bool = True) -> cli.Run:
    """``mlbuild ARGS`` in ``ws`` (in this process) with a cache dir of its own, ``<ws>-cache``:
    two workspaces are two machines sharing only the remote."""
    return cli.mlbuild(ws, *args, check=check,
                       env={"MLBUILD_CACHE_DIR": str(ws.parent / f"{ws.name}-cache"), **(env or {})})


def build(ws: Path, *args: str, env: Mapping[str, str] | None = None) -> tuple[dict[str, Any], str]:
    """``mlbuild build ARGS --json``: the JSON summary and stderr."""
    run = mlbuild(ws, "build", *args, "--json", env=env)
    return run.json(), run.stderr


def remote_files(url: str, kind: str) -> list[Path]:
    root = Path(url.removeprefix("file://")) / kind
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
