"""The headline: two clones of the ResNet example, each with its own local cache, share one
remote; the second builds //models:resnet executing nothing, with identical output digests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from support.remote_ws import build

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "resnet"


def clone(dest: Path) -> Path:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("mlbuild-out", "__pycache__"))
    return dest


def _share(tmp_path: Path, url: str, env: dict[str, str]) -> None:
    first, second = clone(tmp_path / "alice"), clone(tmp_path / "bob")
    one, _ = build(first, "//models:resnet", "--remote-cache", url, env=env)
    assert one["status"] == "succeeded" and one["actions"]["executed"] >= 1
    assert one["remote"]["entries_up"] == one["actions"]["total"]

    two, _ = build(second, "//models:resnet", "--remote-cache", url, env=env)
    assert two["actions"]["executed"] == 0
    assert two["remote_hits"] == two["actions"]["total"] == one["actions"]["total"]
    assert two["outputs"] == one["outputs"]
    # Only the model's outputs came down, not the data and features it was trained from.
    model_out = second / "mlbuild-out" / "models"
    wanted = sum(p.stat().st_size for p in model_out.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert 0 < two["remote"]["bytes_down"] <= wanted + 4096  # + the tree listing


def test_resnet_from_a_file_remote(tmp_path: Path) -> None:
    _share(tmp_path, f"file://{tmp_path / 'team-cache'}", {})


def test_resnet_from_an_s3_remote(tmp_path: Path, s3_bucket: Any) -> None:
    _share(tmp_path, s3_bucket.url("resnet"), s3_bucket.env)
