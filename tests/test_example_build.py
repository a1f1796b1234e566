"""The example pipeline built by mlbuild itself: first build, no-op, config change."""

from __future__ import annotations

import shutil
from pathlib import Path

from support.cli import mlbuild

REPO = Path(__file__).resolve().parents[1]


def build(ws: Path, *args: str) -> dict:
    return mlbuild(ws, "//models:eval", "--json", "-q", *args).json()


def test_example_builds_skips_and_reuses(tmp_path: Path) -> None:
    ws = tmp_path / "resnet"
    shutil.copytree(REPO / "examples" / "resnet", ws, ignore=shutil.ignore_patterns("mlbuild-out", "__pycache__"))
    first = build(ws)
    assert first["actions"]["executed"] == 5
    accuracy = mlbuild(ws, "show", "//models:eval", "--json").json()["//models:eval"]["value"]["accuracy"]
    assert accuracy > 0.85

    noop = build(ws)
    assert noop["actions"] == {**first["actions"], "cached": 5, "executed": 0}
    assert noop["outputs"] == first["outputs"]

    # Changing the training config re-runs training and evaluation, and reuses the data steps.
    changed = build(ws, "--set", "//models:resnet.epochs=1")
    assert changed["actions"]["executed"] == 2 and changed["actions"]["cached"] == 3
    assert changed["outputs"] != first["outputs"]
    assert (ws / "mlbuild-out" / "models" / "eval.value.msgpack").exists()
