"""A variable one action sets must not leak into the next action of the same worker: the next
would record the leaked value, which the build process never has, and miss on every no-op
(seen on the example: //models:eval re-ran after //models:resnet's setdefault of
CUBLAS_WORKSPACE_CONFIG in the same pool worker)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.cli import mlbuild, mlbuild_process
from support.workspace import write_workspace

FILES = {
    "p/BUILD.py": (
        "from mlbuild import target\n"
        "target(name='setter', rule='steps.py:setter')\n"
        "target(name='reader', rule='steps.py:reader', inputs={'up': ':setter'})\n"
    ),
    "p/steps.py": (
        "import os\nfrom mlbuild import rule\n\n"
        "@rule\ndef setter() -> int:\n    os.environ.setdefault('MLBUILD_TEST_KNOB', 'on')\n    return 1\n\n"
        "@rule\ndef reader(up: int) -> str:\n    return os.environ.get('MLBUILD_TEST_KNOB', 'unset')\n"
    ),
}


@pytest.mark.parametrize("runner", ["inline", "local"])
def test_a_variable_set_by_one_step_neither_leaks_nor_breaks_the_no_op(tmp_path: Path, tmp_cache_dir: Path, runner: str) -> None:
    ws = write_workspace(tmp_path / "ws", FILES)
    os.environ.pop("MLBUILD_TEST_KNOB", None)
    if runner == "inline":
        first = mlbuild(ws, "build", "//p:reader", "--json", "-q").json()
        again = mlbuild(ws, "build", "//p:reader", "--json", "-q").json()
        assert "MLBUILD_TEST_KNOB" not in os.environ  # the in-process step's setdefault was undone
    else:  # one pool worker runs both steps, one after the other
        first = mlbuild_process(ws, "build", "//p:reader", "--json", "-q", "-j", "1").json()
        again = mlbuild_process(ws, "build", "//p:reader", "--json", "-q", "-j", "1").json()
    assert first["actions"]["executed"] == 2
    assert again["actions"]["executed"] == 0 and again["actions"]["cached"] == 2
    value = mlbuild(ws, "show", "//p:reader", "--json").json()["//p:reader"]["value"]
    assert value == "unset"  # what a fresh process would compute
