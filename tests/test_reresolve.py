"""A missing or corrupt upstream is resolved again without recursion and without a crash, for
any number of consumers: from the remote when it has good bytes, else by running it; a remote
entry whose blobs are missing is a miss, reported once, never a loop (issue 17, part 3)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from support.cli import mlbuild, mlbuild_process
from support.workspace import write_workspace

RULES = '''
from mlbuild import rule


@rule
def base(config: dict) -> list:
    return list(range(config["n"]))


@rule
def use(numbers: list, config: dict) -> int:
    return sum(numbers) * config["k"]
'''

BUILD = '''
from mlbuild import target

target(name="base", rule="rules.py:base", config={"n": 50})
target(name="c1", rule="rules.py:use", inputs={"numbers": ":base"}, config={"k": 1})
target(name="c2", rule="rules.py:use", inputs={"numbers": ":base"}, config={"k": 2})
target(name="c3", rule="rules.py:use", inputs={"numbers": ":base"}, config={"k": 3})
'''

CONSUMERS = ["//p:c1", "//p:c2", "//p:c3"]


def counts(run_stdout: str) -> dict[str, int]:
    return dict(json.loads(run_stdout.strip().splitlines()[-1])["actions"])


def base_blob(cache: Path, remote: Path | None = None) -> list[Path]:
    """The paths of //p:base's value blob in the local cache (and on the remote)."""
    from mlbuild.cache.store import LocalStore

    store = LocalStore(cache)
    try:
        digest = next(r for r in store.index.iter_actions() if r.label == "//p:base").outputs[0].digest
    finally:
        store.close()
    paths = [cache / "cas" / digest[:2] / digest]
    if remote is not None:
        paths.append(remote / "cas" / digest[:2] / digest)
    return paths


def test_three_consumers_of_a_blob_missing_locally_and_on_the_remote(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    first = write_workspace(tmp_path / "first", {"p/BUILD.py": BUILD, "p/rules.py": RULES})
    second = tmp_path / "second"
    shutil.copytree(first, second)
    url = f"file://{remote}"
    env_first = {"MLBUILD_CACHE_DIR": str(tmp_path / "cache1")}
    mlbuild_process(first, "build", *CONSUMERS, "--remote-cache", url, env=env_first)
    for blob in base_blob(tmp_path / "cache1", remote):
        blob.unlink()
    # The consumers must run (new config), so they need the base's bytes: gone everywhere.
    run = mlbuild_process(second, "build", "--json", "-j", "3", *CONSUMERS, "--remote-cache", url,
                          "--set", "//p:c1.k=10", "--set", "//p:c2.k=20", "--set", "//p:c3.k=30",
                          env={"MLBUILD_CACHE_DIR": str(tmp_path / "cache2")}, timeout=240)
    assert "Traceback" not in run.stderr and "KeyError" not in run.stderr
    assert counts(run.stdout)["executed"] == 4  # the base once, the three consumers
    assert run.stderr.count("//p:base: cached outputs are missing or corrupt on the remote cache") == 1
    assert "missing on the remote" in run.stderr  # the session's own report of the blob


def test_a_blob_missing_locally_comes_from_the_remote(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    ws = write_workspace(tmp_path / "ws", {"p/BUILD.py": BUILD, "p/rules.py": RULES})
    url = f"file://{remote}"
    env = {"MLBUILD_CACHE_DIR": str(tmp_path / "cache")}
    mlbuild_process(ws, "build", *CONSUMERS, "--remote-cache", url, env=env)
    base_blob(tmp_path / "cache")[0].unlink()
    run = mlbuild_process(ws, "build", "--json", *CONSUMERS, "--remote-cache", url,
                          "--set", "//p:c1.k=10", "--set", "//p:c2.k=20", "--set", "//p:c3.k=30", env=env)
    assert counts(run.stdout)["executed"] == 3  # the base's bytes came down, it did not run
    assert "rebuilding" not in run.stderr


@pytest.mark.slow  # 2 x 3,000 steps: about 2 minutes here
def test_a_long_chain_whose_cas_is_gone(tmp_path: Path) -> None:
    n = 3000
    ws = write_workspace(tmp_path / "ws", {
        "c/rules.py": (
            "from mlbuild import rule\n\n\n@rule\ndef first() -> int:\n    return 0\n\n\n"
            "@rule\ndef step(prev: int, config: dict) -> int:\n    return prev + config.get('k', 1)\n"),
        "c/BUILD.py": (
            "from mlbuild import target\n\n"
            "target(name='s0', rule='rules.py:first')\n"
            f"for i in range(1, {n}):\n"
            "    target(name=f's{i}', rule='rules.py:step', inputs={'prev': f':s{i - 1}'}, config={})\n"),
    })
    last = f"//c:s{n - 1}"
    mlbuild(ws, "build", "-q", last)
    shutil.rmtree(tmp_path / "mlbuild-cache" / "cas")
    # The last step must run, so its input's bytes are needed, whose step needs its own, ...
    run = mlbuild(ws, "build", "-q", "--json", last, "--set", f"{last}.k=2")
    assert run.json()["actions"]["executed"] == n
    assert run.json()["outputs"][last]
    value = (ws / "mlbuild-out" / "c" / f"s{n - 1}.value.msgpack").read_bytes()
    import msgspec

    assert msgspec.msgpack.decode(value) == n - 2 + 2
