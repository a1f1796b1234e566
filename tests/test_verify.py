"""``mlbuild verify`` end to end: the example reproduces, nondeterminism and corruption are caught."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from mlbuild.cache.store import LocalStore

from support.cli import mlbuild, mlbuild_process
from support.workspace import write_workspace as write

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "resnet"

STEPS = '''
import os
from pathlib import Path

import numpy as np
from mlbuild import rule


@rule()
def base(config: dict) -> np.ndarray:
    return np.arange(config["n"], dtype=np.float64)


@rule(deterministic={deterministic})
def noisy(base: np.ndarray, out: Path) -> np.ndarray:
    # Seeded from the OS: every run adds different noise to the first three elements.
    rng = np.random.default_rng(int.from_bytes(os.urandom(8), "little"))
    values = base.copy()
    values[:3] += 1.0 + rng.random(3)
    np.save(out / "noise.npy", values)
    (out / "README").write_text("noise")
    return values


@rule()
def total(noisy: np.ndarray) -> dict:
    return {{"n": int(noisy.size), "tail": float(noisy[3:].sum())}}


@rule()
def report(base: np.ndarray, config: dict) -> dict:
    return {{"metrics": {{"scaled": [float(x) * config["scale"] for x in base[:4]]}}}}
'''

BUILD = '''
from mlbuild import target

target(name="base", rule="steps.py:base", config={"n": 100})
target(name="noisy", rule="steps.py:noisy", inputs={"base": ":base"})
target(name="total", rule="steps.py:total", inputs={"noisy": ":noisy"})
target(name="report", rule="steps.py:report", inputs={"base": ":base"}, config={"scale": 2})
'''


def write_workspace(root: Path, deterministic: bool = True) -> Path:
    return write(root, {"p/__init__.py": "", "p/steps.py": STEPS.format(deterministic=deterministic), "p/BUILD.py": BUILD},
                 name="verify-test")


def by_label(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["label"]: a for a in report["actions"]}


def recorded_output(cache: Path, label: str, name: str) -> str:
    store = LocalStore(cache)
    try:
        for record in store.index.list_builds():
            for action in record.actions:
                if action.label == label and action.key:
                    result = store.index.get_action(action.key)
                    if result is not None:
                        ref = result.output(name)
                        assert ref is not None
                        return ref.digest
    finally:
        store.close()
    raise AssertionError(f"{label} has no recorded result")


def corrupt(cache: Path, digest: str) -> None:
    path = cache / "cas" / digest[:2] / digest
    os.chmod(path, 0o644)
    path.write_bytes(b"garbage, not the artifact")


@pytest.mark.slow
def test_example_verifies_with_deps_in_a_second_process(tmp_path: Path, tmp_cache_dir: Path) -> None:
    ws = tmp_path / "resnet"
    shutil.copytree(EXAMPLE, ws, ignore=shutil.ignore_patterns("mlbuild-out", "__pycache__", ".ruff_cache"))
    mlbuild_process(ws, "build", "-q", "//models:resnet")
    for _ in range(2):  # each verify is its own process, neither the one that built
        proc = mlbuild_process(ws, "verify", "--deps", "-q", "//models:resnet")
        assert proc.stdout.startswith("OK: verified 4 actions"), proc.stdout
        assert "4 match" in proc.stdout


def test_never_built_target_is_a_clear_error(tmp_path: Path) -> None:
    ws = write_workspace(tmp_path / "ws")
    proc = mlbuild(ws, "verify", "//p:report", check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "no recorded result" in proc.stderr and "mlbuild build //p:report" in proc.stderr


def test_runs_2_catches_a_nondeterministic_step(tmp_path: Path) -> None:
    ws = write_workspace(tmp_path / "ws")
    proc = mlbuild(ws, "verify", "--runs", "2", "--deps", "-q", "//p:total", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "MISMATCH //p:noisy" in proc.stdout
    assert "output 'value' (npy)" in proc.stdout
    assert "value: float64[100]: 3 of 100 elements differ" in proc.stdout
    assert "noise.npy: float64[100]: 3 of 100 elements differ" in proc.stdout
    assert "FAILED: verified 3 actions" in proc.stdout

    report = json.loads(mlbuild(ws, "verify", "--runs", "2", "--deps", "--json", "//p:total", check=False).stdout)
    assert report["ok"] is False
    actions = by_label(report)
    assert actions["//p:noisy"]["status"] == "mismatch"
    assert actions["//p:noisy"]["run"] == 2
    assert actions["//p:base"]["status"] == actions["//p:total"]["status"] == "match"
    value = next(o for o in actions["//p:noisy"]["outputs"] if o["name"] == "value")
    assert value["diff"]["arrays"][0]["differing"] == 3
    # Nothing was cached: the target still has no recorded result.
    assert mlbuild(ws, "verify", "//p:total", check=False).returncode == 2


def test_declared_nondeterministic_step_is_reported_and_downstream_still_checked(tmp_path: Path) -> None:
    ws = write_workspace(tmp_path / "ws", deterministic=False)
    proc = mlbuild(ws, "verify", "--runs", "2", "--deps", "//p:total", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "NONDETERMINISTIC (declared) //p:noisy" in proc.stdout
    assert "1 nondeterministic (declared)" in proc.stdout
    report = json.loads(mlbuild(ws, "verify", "--runs", "2", "--deps", "--json", "//p:total").stdout)
    actions = by_label(report)
    assert actions["//p:noisy"]["status"] == "nondeterministic"
    # Run 2 of //p:total got run 1's noisy output, so it was really executed and compared.
    assert actions["//p:total"]["status"] == "match"
    assert actions["//p:total"]["outputs"][0]["actual"] == actions["//p:total"]["outputs"][0]["expected"]

    # Against the record too: the build's noisy output differs from any re-execution.
    mlbuild(ws, "build", "-q", "//p:total")
    report = json.loads(mlbuild(ws, "verify", "--deps", "--json", "//p:total").stdout)
    actions = by_label(report)
    assert actions["//p:noisy"]["status"] == "nondeterministic"
    assert actions["//p:total"]["status"] == "match"
    assert report["ok"] is True


def test_verify_against_the_record_names_action_output_and_count(tmp_path: Path, tmp_cache_dir: Path) -> None:
    ws = write_workspace(tmp_path / "ws")
    mlbuild(ws, "build", "-q", "//p:total", "//p:report")
    recorded = recorded_output(tmp_cache_dir, "//p:noisy", "value")
    assert mlbuild(ws, "verify", "//p:report").stdout.startswith("OK: verified 1 actions")
    proc = mlbuild(ws, "verify", "--deps", "//p:total", check=False)
    assert proc.returncode == 1
    assert f"output 'value' (npy): {recorded[:12]} ->" in proc.stdout
    assert "3 of 100 elements differ" in proc.stdout
    # Verification never replaces the recorded result.
    assert recorded_output(tmp_cache_dir, "//p:noisy", "value") == recorded


def test_corrupt_blob_is_detected_and_never_returned(tmp_path: Path, tmp_cache_dir: Path) -> None:
    ws = write_workspace(tmp_path / "ws")
    mlbuild(ws, "build", "-q", "//p:report")
    digest = recorded_output(tmp_cache_dir, "//p:base", "value")
    blob = tmp_cache_dir / "cas" / digest[:2] / digest

    # verify: the corrupt recorded blob is reported, and the matching re-execution restores it.
    corrupt(tmp_cache_dir, digest)
    proc = mlbuild(ws, "verify", "--deps", "//p:report")
    assert "recorded output blob(s) were missing or corrupt" in proc.stdout
    assert "restored" in proc.stdout
    assert blob.read_bytes() != b"garbage, not the artifact"

    # build, as an input of a step that must run: the producer is re-executed.
    corrupt(tmp_cache_dir, digest)
    proc = mlbuild(ws, "build", "//p:report", "--set", "//p:report.scale=3")
    assert "//p:base: cached outputs are missing or corrupt; rebuilding it" in proc.stderr
    value = msgspec.msgpack.decode((ws / "mlbuild-out" / "p" / "report.value.msgpack").read_bytes())
    assert value == {"metrics": {"scaled": [0.0, 3.0, 6.0, 9.0]}}

    # build, as a requested target: re-executed, and what lands in mlbuild-out is intact.
    corrupt(tmp_cache_dir, digest)
    shutil.rmtree(ws / "mlbuild-out")
    proc = mlbuild(ws, "build", "//p:base")
    assert "//p:base: cached outputs are missing or corrupt; rebuilding it" in proc.stderr
    assert np.array_equal(np.load(ws / "mlbuild-out" / "p" / "base.value.npy"), np.arange(100, dtype=np.float64))

    # verify without --deps cannot restore a corrupt input: it says so instead of comparing.
    corrupt(tmp_cache_dir, digest)
    proc = mlbuild(ws, "verify", "--json", "//p:report", check=False)
    assert proc.returncode == 1
    check = json.loads(proc.stdout)["actions"][0]
    assert check["status"] == "unchecked" and "input 'base'" in check["error"]


def test_runs_must_be_at_least_two(tmp_path: Path) -> None:
    ws = write_workspace(tmp_path / "ws")
    proc = mlbuild(ws, "verify", "--runs", "1", "//p:base", check=False)
    assert proc.returncode == 2 and "give 2 or more" in proc.stderr


def test_verify_against_the_team_remote_cache(tmp_path: Path) -> None:
    remote = (tmp_path / "remote").as_uri()
    publisher = write_workspace(tmp_path / "ci")
    mlbuild(publisher, "build", "-q", "//p:total", "//p:report", "--remote-cache", remote)

    # Another checkout with an empty local cache: the baseline is what the team published.
    other = write_workspace(tmp_path / "dev")
    env_cache = tmp_path / "dev-cache"
    proc = mlbuild(other, "verify", "--deps", "--json", "//p:total", "//p:report", "--remote-cache", remote,
                   check=False, env={"MLBUILD_CACHE_DIR": str(env_cache)})
    assert proc.returncode == 1, proc.stderr
    actions = by_label(proc.json())
    assert {a["baseline"] for a in actions.values()} == {"remote cache"}
    assert actions["//p:base"]["status"] == actions["//p:report"]["status"] == actions["//p:total"]["status"] == "match"
    noisy = actions["//p:noisy"]
    assert noisy["status"] == "mismatch"
    # The published bytes were fetched, so the diff is element-wise, not just "digests differ".
    value = next(o for o in noisy["outputs"] if o["name"] == "value")
    assert value["diff"]["arrays"][0]["differing"] == 3
