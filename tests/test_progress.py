"""Progress output: a live status line on a terminal, plain lines otherwise, JSON alone on stdout."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from support.cli import mlbuild
from support.workspace import write_workspace

RULES = '''
import time
from mlbuild import rule


@rule
def slow(config: dict) -> int:
    time.sleep(config["seconds"])
    return config["seconds"]
'''

BUILD = '''
from mlbuild import target

target(name="a", rule="rules.py:slow", config={"seconds": 1})
target(name="b", rule="rules.py:slow", config={"seconds": 2})
'''


def workspace(root: Path) -> Path:
    return write_workspace(root, {"mlbuild.toml": "", "p/rules.py": RULES, "p/BUILD.py": BUILD})


def test_terminal_gets_a_live_status_line(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws")
    # A process of its own: what it shows depends on its stderr being a terminal.
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlbuild", "//p:all", "-j", "2"], cwd=ws, stdin=subprocess.DEVNULL, stdout=child, stderr=child
    )
    os.close(child)
    screen = b""
    while True:
        ready, _, _ = select.select([main], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    assert proc.wait(timeout=60) == 0
    text = screen.decode(errors="replace")
    assert "\r\x1b[2K" in text  # redrawn in place
    assert "running: //p:" in text and "0 cached" in text  # which steps run, with their time
    assert "OK: build" in text and "2 executed" in text


def test_plain_lines_and_json_on_stdout_only(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws")
    proc = mlbuild(ws, "//p:a", "--json")
    summary = json.loads(proc.stdout)  # nothing but the JSON object on stdout
    assert summary["targets"] == ["//p:a"] and summary["actions"]["executed"] == 1
    assert "\x1b" not in proc.stderr
    assert "built //p:a" in proc.stderr and "OK: build" in proc.stderr
