"""The text-classification example (DVC's get-started pipeline, without pickles): built end to
end, shared through a file:// and an S3 remote (a second checkout executes nothing), verified
bit for bit, and its stored artifacts open with their own libraries."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from support import cli

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "textclf"
TARGET = "//models:evaluate"


def clone(dest: Path) -> Path:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("mlbuild-out", "__pycache__"))
    return dest


def mlbuild(ws: Path, *args: str, env: dict[str, str] | None = None) -> cli.Run:
    """``mlbuild ARGS`` in ``ws`` with a cache of its own (two clones are two machines), on the
    local executor: real worker processes, as a user's build runs (and the example's packages
    never meet another workspace's of the same name in one interpreter)."""
    cache = {"MLBUILD_CACHE_DIR": str(ws.parent / f"{ws.name}-cache")}
    return cli.mlbuild(ws, *args, env={**cache, **(env or {})})


def _build(ws: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    run = mlbuild(ws, "build", TARGET, "//models:train", *args, "--json", env=env)
    return run.json()  # type: ignore[no-any-return]


def _share(tmp_path: Path, url: str, env: dict[str, str]) -> tuple[Path, dict[str, Any]]:
    first, second = clone(tmp_path / "alice"), clone(tmp_path / "bob")
    one = _build(first, "--remote-cache", url, env=env)
    assert one["status"] == "succeeded" and one["actions"]["executed"] == 4
    assert one["remote"]["entries_up"] == 4  # every output travels: nothing here is pickled

    two = _build(second, "--remote-cache", url, env=env)
    assert two["actions"]["executed"] == 0 and two["remote_hits"] == 4
    assert two["outputs"] == one["outputs"]
    return second, one


def test_textclf_from_a_file_remote_verified_bit_for_bit(tmp_path: Path) -> None:
    second, one = _share(tmp_path, f"file://{tmp_path / 'team-cache'}", {})
    out = second / "mlbuild-out" / "models"
    # The model is a plain .skops file: skops opens it (scikit-learn's own types are trusted).
    import skops.io as sio

    model_file = out / "train.value.skops"
    trusted = sio.get_untrusted_types(file=model_file)
    assert all(t.startswith("sklearn.") for t in trusted)
    model = sio.load(model_file, trusted=trusted)
    assert type(model).__name__ == "RandomForestClassifier" and model.n_jobs == 1

    # The evaluation: metrics, the PR curve as a DataFrame, and both plots, read back.
    from mlbuild.rules import codecs

    value = codecs.decode("msgpack", (out / "evaluate.value.msgpack").read_bytes())
    assert set(value["metrics"]) == {"avg_prec", "roc_auc", "accuracy"}
    assert 0.7 < value["metrics"]["roc_auc"] <= 1.0
    assert list(value["precision_recall"].columns) == ["precision", "recall", "threshold"]
    assert value["plot"].png.startswith(b"\x89PNG") and b"<svg" in value["plot"].svg
    assert value["interactive"].data[0].name == "PR"

    # Re-executed from scratch (every step), the outputs are the same bits.
    report = mlbuild(second, "verify", "--deps", TARGET, "--json").json()
    assert report["ok"] and len(report["actions"]) == 4
    assert {a["status"] for a in report["actions"]} == {"match"}
    codecs_seen = {a["label"]: [o["codec"] for o in a["outputs"]] for a in report["actions"]}
    assert codecs_seen["//models:train"] == ["skops"]


def test_textclf_from_an_s3_remote(tmp_path: Path, s3_bucket: Any) -> None:
    _share(tmp_path, s3_bucket.url("textclf"), s3_bucket.env)
