"""Errors before the work is lost: a return annotation that cannot be stored fails at plan time
(nothing runs); a value that cannot be encoded names the part that failed, says what to return
instead, and its step's log is still stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlbuild.rules.codecs import static

from support import cli
from support.workspace import write_workspace

RULES = '''
import collections.abc
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import scipy.sparse as sp
from mlbuild import rule


class Plain:
    def __init__(self, x):
        self.x = x


@dataclass
class Good:
    x: int
    m: sp.csr_matrix


@rule
def plain() -> Plain:
    raise AssertionError("never runs: the annotation fails at plan time")


@rule
def lazy() -> "collections.abc.Iterator[int]":
    raise AssertionError("never runs")


@rule
def iterator() -> dict[str, Iterator[int]]:
    raise AssertionError("never runs")


@rule
def good() -> Good:
    return Good(1, sp.eye(2, format="csr"))


@rule
def bad_value() -> dict:
    print("step log: computed the features")
    return {"features": np.array([object()], dtype=object), "n": 1}


@rule(allow_pickle=True)
def pickled() -> Plain:
    return Plain(1)
'''

BUILD = "\n".join(
    f'target(name="{n}", rule="rules.py:{n}")' for n in ["plain", "lazy", "iterator", "good", "bad_value", "pickled"]
)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return write_workspace(tmp_path / "ws", {"p/rules.py": RULES, "p/BUILD.py": "from mlbuild import target\n" + BUILD})


def _run(ws: Path, *args: str) -> cli.Run:
    return cli.mlbuild(ws, *args, check=False, env={"MLBUILD_CACHE_DIR": str(ws.parent / "cache")})


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("plain", "//p:plain: rule p/rules.py:plain returns Plain: Plain (p/rules.py) is a plain class, which mlbuild cannot store: make it a @dataclass"),
        ("lazy", "returns 'collections.abc.Iterator[int]': Iterator: an iterator is consumed once: return a list"),
        ("iterator", "returns dict[str, Iterator[int]]: Iterator: an iterator is consumed once: return a list"),
    ],
)
def test_an_unstorable_return_annotation_fails_at_plan_time(ws: Path, target: str, message: str) -> None:
    run = _run(ws, "build", f"//p:{target}")
    assert run.returncode != 0
    assert message in run.stderr
    assert "never runs" not in run.stderr + run.stdout
    assert not (ws / "mlbuild-out" / "p").exists() or not any((ws / "mlbuild-out" / "p").glob(f"{target}*"))


def test_storable_annotations_and_pickle_opt_in_pass_the_check(ws: Path) -> None:
    assert _run(ws, "build", "//p:good", "//p:pickled").returncode == 0


def test_a_value_that_cannot_be_encoded_names_its_path_and_keeps_the_log(ws: Path) -> None:
    run = _run(ws, "build", "//p:bad_value", "--json")
    assert run.returncode != 0
    text = run.stdout + run.stderr
    assert 'return value["features"]: ndarray of object dtype cannot be encoded; give it a numeric' in text
    assert "step log: computed the features" in text


def test_a_missing_optional_library_is_named_with_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(static.REQUIRES, "nosuchlib.", (("nosuchlib_xyz",), "frame"))
    static._missing.cache_clear()
    assert static.missing_libraries(["nosuchlib.Frame"]) == (
        "returns nosuchlib.Frame, which needs nosuchlib_xyz to be stored: pip install 'mlbuild[frame]'"
    )
    assert static.missing_libraries(["pandas.DataFrame", "builtins.dict"]) is None


FRAME_RULES = '''
import pandas as pd
import scipy.sparse as sp
from mlbuild import rule


@rule
def table() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2]})


@rule
def both(table: pd.DataFrame) -> dict:
    return {"frame": table, "m": sp.eye(2, format="csr")}
'''


def test_a_noop_build_of_dataframes_and_sparse_imports_none_of_their_libraries(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    ws = write_workspace(tmp_path / "ws", {
        "p/rules.py": FRAME_RULES,
        "p/BUILD.py": 'from mlbuild import target\ntarget(name="table", rule="rules.py:table")\n'
                      'target(name="both", rule="rules.py:both", inputs={"table": ":table"})\n',
    })
    env = {"MLBUILD_CACHE_DIR": str(tmp_path / "cache")}
    assert cli.mlbuild(ws, "build", "//p:both", env=env).returncode == 0
    probe = (
        "import sys\n"
        "from mlbuild.engine.cli import main\n"
        "code = main(['build', '//p:both', '--json'])\n"
        "heavy = ('pandas', 'pyarrow', 'scipy', 'sklearn', 'skops', 'polars', 'plotly', 'matplotlib', 'PIL', 'torch')\n"
        "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
        "sys.exit(code)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ws, env={**os.environ, **env}, capture_output=True,
                         text=True, check=True)
    assert "LOADED []" in out.stdout, out.stdout + out.stderr
    summary = json.loads(out.stdout[: out.stdout.rindex("LOADED")])
    assert summary["actions"]["executed"] == 0 and summary["actions"]["total"] == 2
