"""Build records through the CLI: ``builds`` (list, filter, show), ``rerun``, ``reproduce``."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from support.cli import mlbuild
from support.workspace import write_workspace as write

RULES = '''
from pathlib import Path
from mlbuild import rule


@rule
def source(config: dict) -> list:
    return list(range(config["n"]))


@rule
def scale(numbers: list, config: dict) -> list:
    return [x * config["factor"] for x in numbers]


@rule
def total(numbers: list, out: Path) -> int:
    (out / "total.txt").write_text(str(sum(numbers)))
    return sum(numbers)


@rule
def boom(config: dict) -> int:
    raise ValueError("exploded on purpose")
'''

BUILD = '''
from mlbuild import target

target(name="source", rule="rules.py:source", config={{"n": 5}})
target(name="scaled", rule="rules.py:scale", inputs={{"numbers": ":source"}}, config={{"factor": {factor}}})
target(name="total", rule="rules.py:total", inputs={{"numbers": ":scaled"}})
target(name="boom", rule="rules.py:boom")
'''

GIT = ["git", "-c", "user.email=test@example.com", "-c", "user.name=test", "-c", "commit.gpgsign=false"]


def as_json(ws: Path, *args: str) -> Any:
    return mlbuild(ws, *args, "--json").json()


def write_workspace(root: Path, factor: int = 3) -> Path:
    return write(root, {"p/rules.py": RULES, "p/BUILD.py": BUILD.format(factor=factor)}, name="records-test")


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=60).stdout


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return write_workspace(tmp_path / "ws")


def test_builds_lists_newest_first_filters_and_shows(ws: Path) -> None:
    first = as_json(ws, "build", "-q", "//p:total")["build_id"]
    failed = mlbuild(ws, "build", "-q", "--json", "//p:boom", check=False).json()["build_id"]
    last = as_json(ws, "build", "-q", "//p:scaled")["build_id"]

    listed = as_json(ws, "builds")
    assert [b["id"] for b in listed] == [last, failed, first]
    assert [b["id"] for b in as_json(ws, "builds", "--status", "failed")] == [failed]
    assert [b["id"] for b in as_json(ws, "builds", "--limit", "1")] == [last]
    # A target matches the builds that requested it or ran it.
    assert [b["id"] for b in as_json(ws, "builds", "--target", "//p:scaled")] == [last, first]
    assert [b["id"] for b in as_json(ws, "builds", "--target", "//p:total")] == [first]

    text = mlbuild(ws, "builds").stdout.splitlines()
    assert text[0].startswith(last) and "succeeded" in text[0]
    assert "failed" in text[1] and "//p:boom" in text[1]

    shown = as_json(ws, "builds", "show", first[:-2])
    assert shown["id"] == first and shown["targets"] == ["//p:total"]
    assert shown["argv"][1:] == ["build", "-q", "//p:total", "--json"]
    assert {a["label"]: a["status"] for a in shown["actions"]} == {
        "//p:source": "executed", "//p:scaled": "executed", "//p:total": "executed"
    }
    assert all(len(a["key"]) == 32 for a in shown["actions"])
    text = mlbuild(ws, "builds", "show", failed).stdout
    assert "status     failed" in text and "exploded on purpose" in text


def test_builds_show_unknown_id_is_a_clear_error(ws: Path) -> None:
    proc = mlbuild(ws, "builds", "show", "19990101", check=False)
    assert proc.returncode == 2 and "no such build" in proc.stderr and "Traceback" not in proc.stderr


def test_rerun_merges_overrides_and_rebuilds_only_affected_steps(ws: Path) -> None:
    original = as_json(ws, "build", "-q", "//p:total", "--set", "//p:source.n=4")
    assert original["outputs"]["//p:total"]

    same = as_json(ws, "rerun", original["build_id"], "-q")
    assert same["actions"]["executed"] == 0 and same["actions"]["cached"] == 3
    assert same["rerun_of"] == original["build_id"]

    changed = as_json(ws, "rerun", original["build_id"], "-q", "--set", "//p:scaled.factor=10")
    assert changed["actions"]["executed"] == 2 and changed["actions"]["cached"] == 1  # source stays cached
    record = as_json(ws, "builds", "show", changed["build_id"])
    assert record["rerun_of"] == original["build_id"]
    assert record["overrides"] == {"//p:source": {"n": 4}, "//p:scaled": {"factor": 10}}
    assert {a["label"]: a["status"] for a in record["actions"]}["//p:source"] == "cached"
    assert (ws / "mlbuild-out" / "p" / "total" / "total.txt").read_text() == str(10 * sum(range(4)))


def test_rerun_no_cache_executes_everything(ws: Path) -> None:
    original = as_json(ws, "build", "-q", "//p:total")
    again = as_json(ws, "rerun", original["build_id"], "-q", "--no-cache")
    assert again["actions"]["executed"] == 3


def test_reproduce_checks_out_the_recorded_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    ws = write_workspace(repo / "pipeline")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    old = as_json(ws, "build", "-q", "//p:total")["build_id"]

    proc = mlbuild(ws, "reproduce", old, "-q")
    assert proc.stdout.splitlines()[-1].startswith("OK: verified 3 actions"), proc.stdout
    report = as_json(ws, "reproduce", old, "-q")
    assert report["ok"] and {a["status"] for a in report["actions"]} == {"match"}

    # A later commit changes the output; the old build still reproduces from its own commit.
    write_workspace(ws, factor=7)
    git(repo, "commit", "-q", "-am", "factor 7")
    new = as_json(ws, "build", "-q", "//p:total")["build_id"]
    assert mlbuild(ws, "reproduce", old, "-q").returncode == 0
    assert mlbuild(ws, "reproduce", new, "-q").returncode == 0
    # The temporary worktrees are gone.
    assert git(repo, "worktree", "list").strip().count("\n") == 0

    # A dirty build (a changed file, or an untracked one): its changes were never recorded, so
    # it cannot be rebuilt from source; one clear error, exit 2.
    write_workspace(ws, factor=8)
    dirty = as_json(ws, "build", "-q", "//p:total")["build_id"]
    proc = mlbuild(ws, "reproduce", dirty, "-q", check=False)
    assert proc.returncode == 2 and "uncommitted or untracked changes" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_reproduce_without_git_is_a_clear_error(ws: Path) -> None:
    build_id = as_json(ws, "build", "-q", "//p:source")["build_id"]
    proc = mlbuild(ws, "reproduce", build_id, check=False)
    assert proc.returncode == 2
    assert "has no git commit recorded" in proc.stderr and "Traceback" not in proc.stderr
