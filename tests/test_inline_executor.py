"""The ``inline`` executor: steps run in the calling thread, through the same runner as every
executor, one at a time; their output goes to their logs, and they leave no imports behind."""

from __future__ import annotations

import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from mlbuild.cache.records import ActionResult
from mlbuild.cache.store import LocalStore
from mlbuild.engine.run.backends import executor_class
from mlbuild.engine.run.inline_executor import InlineExecutor

from support.cli import mlbuild
from support.workspace import write_workspace

RULES = '''
import os
import subprocess
import sys
from mlbuild import rule


@rule
def noisy(config: dict) -> int:
    print("print to sys.stdout")
    sys.stderr.write("write to sys.stderr\\n")
    os.write(1, b"os.write to fd 1\\n")
    subprocess.run([sys.executable, "-c", "print('from a child process')"], check=True)
    return config["n"]


@rule
def which(config: dict) -> str:
    return VERSION


VERSION = "first"
'''

BUILD = '''
from mlbuild import target

target(name="noisy", rule="rules.py:noisy", config={"n": 3})
target(name="which", rule="rules.py:which")
'''


def results(cache: Path) -> dict[str, ActionResult]:
    store = LocalStore(cache)
    try:
        return {r.label: r for r in store.index.iter_actions()}
    finally:
        store.close()


def log_of(cache: Path, label: str) -> str:
    result = results(cache)[label]
    assert result.log_digest is not None, f"{label} has no log"
    store = LocalStore(cache)
    try:
        return store.cas.get_bytes(result.log_digest).decode()
    finally:
        store.close()


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return write_workspace(tmp_path / "ws", {"pkg/rules.py": RULES, "pkg/BUILD.py": BUILD})


def test_registered_by_name() -> None:
    assert executor_class("inline") is InlineExecutor


def test_every_kind_of_step_output_goes_to_its_log(ws: Path, tmp_cache_dir: Path,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    run = mlbuild(ws, "//pkg:noisy", "--json")
    assert run.json()["actions"]["executed"] == 1
    log = log_of(tmp_cache_dir, "//pkg:noisy")
    for line in ["print to sys.stdout", "write to sys.stderr", "os.write to fd 1", "from a child process"]:
        assert line in log
        assert line not in run.stdout + run.stderr
    leaked = capfd.readouterr()
    assert "print to sys.stdout" not in leaked.out + leaked.err
    assert "running //pkg:noisy" in run.stderr  # the build's own lines are not in the log
    assert "running //pkg:noisy" not in log


def test_the_key_and_outputs_match_the_local_executor(ws: Path, tmp_path: Path) -> None:
    inline = mlbuild(ws, "//pkg:noisy", "--json").json()
    local = mlbuild(ws, "//pkg:noisy", "--json", "--no-cache", executor="local",
                    env={"MLBUILD_CACHE_DIR": str(tmp_path / "other-cache")}).json()
    assert local["actions"]["executed"] == 1
    assert local["outputs"] == inline["outputs"]


def test_workspace_modules_are_forgotten_after_each_step(ws: Path, tmp_path: Path) -> None:
    assert mlbuild(ws, "//pkg:which", "--json").json()["actions"]["executed"] == 1
    assert not [m for m in sys.modules if m in ("rules", "pkg", "pkg.rules")]
    assert str(ws) not in sys.path
    # A second workspace with a module of the same name runs its own code, not the first one's.
    other = write_workspace(tmp_path / "other", {"pkg/rules.py": RULES.replace('"first"', '"second"'),
                                                 "pkg/BUILD.py": BUILD})
    assert mlbuild(other, "//pkg:which", "--json").json()["actions"]["executed"] == 1
    assert 'value: "second"' in mlbuild(other, "show", "//pkg:which").stdout
    assert 'value: "first"' in mlbuild(ws, "show", "//pkg:which").stdout


def test_a_failing_step_is_an_outcome_with_the_users_traceback(ws: Path) -> None:
    rules = ws / "pkg" / "rules.py"
    rules.write_text(rules.read_text() + "\n\n@rule\ndef boom(config: dict) -> int:\n    raise ValueError('on purpose')\n")
    (ws / "pkg" / "BUILD.py").write_text(BUILD + 'target(name="boom", rule="rules.py:boom")\n')
    run = mlbuild(ws, "//pkg:boom", check=False)
    assert run.returncode == 1
    assert "FAILED //pkg:boom" in run.stderr and "ValueError: on purpose" in run.stderr
    assert 'rules.py", line' in run.stderr


def test_steps_never_overlap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two builds in two threads of one process: the second step starts only once the first
    has finished, because both would capture the same fd 1 and 2."""
    events = tmp_path / "events"
    gate = tmp_path / "gate"
    rules = textwrap.dedent(f'''
        import time
        from pathlib import Path
        from mlbuild import rule

        @rule
        def step(config: dict) -> str:
            events = Path({str(events)!r})
            with events.open("a") as f:
                f.write("enter " + config["name"] + "\\n")
            if config["name"] == "a":  # holds on until the test opens the gate (bounded)
                deadline = time.monotonic() + 60
                while not Path({str(gate)!r}).exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
            with events.open("a") as f:
                f.write("exit " + config["name"] + "\\n")
            return config["name"]
    ''')
    build = ('from mlbuild import target\n'
             'target(name="a", rule="rules.py:step", config={"name": "a"})\n'
             'target(name="b", rule="rules.py:step", config={"name": "b"})\n')
    ws = write_workspace(tmp_path / "ws", {"p/rules.py": rules, "p/BUILD.py": build})
    from mlbuild.engine.cli import main

    monkeypatch.chdir(ws)  # the working directory is the process's: both threads start here
    codes: dict[str, int] = {}

    def build_one(name: str) -> None:
        codes[name] = main(["build", "-q", "--executor", "inline", f"//p:{name}"])

    first = threading.Thread(target=build_one, args=("a",))
    first.start()
    deadline = time.monotonic() + 60
    while not (events.exists() and "enter a" in events.read_text()) and time.monotonic() < deadline:
        time.sleep(0.01)
    second = threading.Thread(target=build_one, args=("b",))
    second.start()
    # Give the second step every chance to start: had it not waited for the first, it would
    # be in the events file well within this.
    second.join(timeout=1.0)
    gate.write_text("open")
    first.join(timeout=60)
    second.join(timeout=60)
    assert codes == {"a": 0, "b": 0}
    assert events.read_text().split("\n")[:4] == ["enter a", "exit a", "enter b", "exit b"]
