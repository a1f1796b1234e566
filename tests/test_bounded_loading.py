"""Loading and running are bounded: a BUILD.py that exits or loops, a step that outlives its
timeout, a non-UTF-8 mlbuild.toml — each one error line naming the file or target (issue 17, 5)."""

from __future__ import annotations

from pathlib import Path

from support.cli import mlbuild, mlbuild_process
from support.workspace import write_workspace

RULES = '''
import re
import time
from mlbuild import rule


@rule
def quick(config: dict) -> int:
    return 1


@rule(timeout=1)
def sleepy(config: dict) -> int:
    time.sleep(120)
    return 2


@rule
def slow(config: dict) -> int:
    time.sleep(120)
    return 3


@rule(timeout=1)
def stuck_in_c(config: dict) -> int:
    # catastrophic backtracking: one C call that never looks at signals
    return int(bool(re.match(r"(a+)+$", "a" * 64 + "b")))
'''

BUILD = '''
from mlbuild import target

target(name="quick", rule="rules.py:quick")
target(name="sleepy", rule="rules.py:sleepy")
target(name="slow", rule="rules.py:slow")
target(name="stuck", rule="rules.py:stuck_in_c")
'''


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("mlbuild: error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def test_sys_exit_in_a_build_file_is_an_error_naming_it(tmp_path: Path) -> None:
    ws = write_workspace(tmp_path / "ws", {
        "models/BUILD.py": "import sys\nsys.exit(0)\n",
        "other/BUILD.py": "raise SystemExit('bye')\n",
    })
    run = mlbuild(ws, "build", "--json", "//models:eval", check=False)
    assert run.returncode == 2 and run.stdout == ""
    assert "models/BUILD.py" in one_error_line(run.stderr) and "sys.exit(0)" in run.stderr
    run = mlbuild(ws, "build", "//other:all", check=False)
    assert run.returncode == 2 and "other/BUILD.py" in one_error_line(run.stderr)


def test_an_endless_build_file_is_stopped_at_the_load_timeout(tmp_path: Path) -> None:
    ws = write_workspace(tmp_path / "ws", {
        "mlbuild.toml": "[build]\nload_timeout = 1\n",
        # an endless loop that even swallows ordinary exceptions
        "spin/BUILD.py": "while True:\n    try:\n        pass\n    except Exception:\n        pass\n",
    })
    run = mlbuild_process(ws, "build", "//spin:all", check=False, timeout=120)
    assert run.returncode == 2
    line = one_error_line(run.stderr)
    assert "spin/BUILD.py" in line and "load_timeout" in line


def test_a_non_utf8_workspace_file_is_one_line(tmp_path: Path) -> None:
    ws = write_workspace(tmp_path / "ws", {"p/BUILD.py": ""})
    (ws / "mlbuild.toml").write_bytes(b"[workspace]\nname = '\xff\xfe'\n")
    run = mlbuild(ws, "build", "//p:all", check=False)
    assert run.returncode == 2 and "UTF-8" in one_error_line(run.stderr)
    (ws / "mlbuild.toml").write_text("")
    (ws / "p" / "BUILD.py").write_bytes(b"x = '\xff'\n")
    run = mlbuild(ws, "build", "//p:all", check=False)
    assert run.returncode == 2 and "p/BUILD.py" in one_error_line(run.stderr)


def test_a_step_past_its_timeout_fails_its_target(tmp_path: Path) -> None:
    ws = write_workspace(tmp_path / "ws", {"p/BUILD.py": BUILD, "p/rules.py": RULES})
    run = mlbuild_process(ws, "build", "-k", "//p:sleepy", "//p:quick", check=False, timeout=120)
    assert run.returncode == 1, run.stderr
    assert "timed out after 1s" in run.stderr and "//p:sleepy" in one_error_line(run.stderr)
    assert "1 executed, 1 failed" in run.stderr
    # --timeout caps a step that has no limit of its own
    run = mlbuild_process(ws, "build", "//p:slow", "--timeout", "1", check=False, timeout=120)
    assert run.returncode == 1 and "timed out after 1s" in run.stderr


def test_a_step_stuck_in_c_code_has_its_process_ended(tmp_path: Path) -> None:
    ws = write_workspace(tmp_path / "ws", {"p/BUILD.py": BUILD, "p/rules.py": RULES})
    run = mlbuild_process(ws, "build", "//p:stuck", check=False, timeout=120)
    assert run.returncode == 1, run.stderr
    assert "timed out after 1s" in run.stderr and "//p:stuck" in one_error_line(run.stderr)
    # the pool is usable again afterwards
    mlbuild_process(ws, "build", "//p:quick")


def test_a_timeout_in_process(tmp_path: Path) -> None:
    """The inline executor (steps in the calling thread) stops a step at its timeout too."""
    ws = write_workspace(tmp_path / "ws", {"p/BUILD.py": BUILD, "p/rules.py": RULES})
    run = mlbuild(ws, "build", "//p:sleepy", check=False)
    assert run.returncode == 1 and "timed out after 1s" in run.stderr
