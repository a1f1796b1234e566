"""Labels are checked before any file is touched: no ``..``, no absolute paths, no package
folder that leads outside the workspace; Unicode names the same everywhere (issue 17, part 2)."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from support.cli import mlbuild

RULES = '''
from mlbuild import rule


@rule
def make(config: dict) -> int:
    return config["n"]
'''

# A BUILD.py that leaves a trace when it is executed.
BUILD = '''
from pathlib import Path
from mlbuild import target

Path(__file__).with_name("EXECUTED").write_text("yes")
target(name="data", rule="rules.py:make", config={"n": 1})
'''


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    for pkg in (root / "good", root.parent / "sibling"):
        pkg.mkdir(parents=True)
        (pkg / "rules.py").write_text(RULES)
        (pkg / "BUILD.py").write_text(BUILD)
    (root / "mlbuild.toml").write_text("")
    # A user's own folder where a `..` label would materialize.
    (root / "sibling" / "data").mkdir(parents=True)
    (root / "sibling" / "data" / "keep.txt").write_text("mine")
    return root


def run(ws: Path, *args: str) -> tuple[int, str]:
    result = mlbuild(ws, *args, check=False)
    return result.returncode, result.stderr


def assert_refused(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlbuild: error:"), err
    for w in words:
        assert w in lines[0], err


@pytest.mark.parametrize("label", ["//../sibling:data", "//good/../sibling:data", "//good/..:data", "//./good:data",
                                   "//good:..", "//good:.", "//../..."])
def test_dot_dot_labels_are_refused_before_anything_runs(ws: Path, label: str) -> None:
    code, err = run(ws, "build", label)
    assert_refused(code, err, "invalid")
    assert not (ws.parent / "sibling" / "EXECUTED").exists()
    assert (ws / "sibling" / "data" / "keep.txt").read_text() == "mine"
    assert not (ws / "mlbuild-out").exists()


def test_relative_dot_dot_from_a_package_folder(ws: Path) -> None:
    code, err = run(ws / "good", "build", "../sibling:data")
    assert_refused(code, err, "invalid")
    assert not (ws.parent / "sibling" / "EXECUTED").exists()


def test_a_package_folder_linked_outside_the_workspace_is_refused(ws: Path) -> None:
    os.symlink(ws.parent / "sibling", ws / "linked")
    code, err = run(ws, "build", "//linked:data")
    assert_refused(code, err, "outside the workspace")
    assert not (ws.parent / "sibling" / "EXECUTED").exists()
    # //... does not follow it either
    code, err = run(ws, "build", "//...")
    assert code == 0, err
    assert not (ws.parent / "sibling" / "EXECUTED").exists()


def test_an_output_folder_linked_away_is_refused(ws: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (ws / "mlbuild-out").mkdir()
    os.symlink(elsewhere, ws / "mlbuild-out" / "good")
    code, err = run(ws, "build", "-q", "//good:data")
    assert_refused(code, err, "outside")
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("name", ["..", ".", ".mlbuild-results", "a\nb"])
def test_bad_target_names_in_build_files(ws: Path, name: str) -> None:
    (ws / "good" / "BUILD.py").write_text(f'from mlbuild import target\ntarget(name={name!r}, rule="rules.py:make")\n')
    code, err = run(ws, "build", "//good:all")
    assert_refused(code, err, "good/BUILD.py")


def test_a_very_long_label_is_one_line(ws: Path) -> None:
    code, err = run(ws, "build", "//good:" + "x" * 10_000)
    assert_refused(code, err, "characters long")
    assert len(err) < 300
    code, err = run(ws, "build", "//" + "p" * 300 + ":x")
    assert_refused(code, err, "255 bytes")


def test_unicode_target_names_are_accepted_everywhere(ws: Path) -> None:
    (ws / "good" / "BUILD.py").write_text(
        'from mlbuild import target\ntarget(name="modèle", rule="rules.py:make", config={"n": 2})\n'
        'target(name="après", rule="rules.py:make", config={"n": 3})\n')
    code, err = run(ws, "build", "//good:all")
    assert code == 0, err
    code, err = run(ws, "build", "//good:modèle")
    assert code == 0, err
    nfd = unicodedata.normalize("NFD", "//good:modèle")
    assert nfd != "//good:modèle"
    code, err = run(ws, "build", nfd)
    assert code == 0, err
    assert (ws / "mlbuild-out" / "good" / "modèle.value.msgpack").exists()


_LABEL_CHARS = "abZ09_.+=,@~-/:é "


@given(text=st.text(alphabet=_LABEL_CHARS, max_size=40), current=st.sampled_from(["", "pkg", "a/b.c"]))
@example(text="p0001:t7", current="")
@example(text="a/.b:c", current="pkg")
@example(text="a:all", current="")
@example(text="t", current="pkg")
def test_the_fast_label_path_agrees_with_the_general_parser(text: str, current: str) -> None:
    """parse_pattern takes common labels without the general parser; for any text both give the
    same pattern, or both refuse it."""
    from mlbuild.engine.errors import UserError
    from mlbuild.engine.plan.labels import _parse_general, parse_pattern

    def outcome(parse: Any) -> object:
        try:
            return parse(text, current)
        except UserError:
            return "refused"

    for candidate in (text, "//" + text, ":" + text):
        text = candidate
        assert outcome(parse_pattern) == outcome(_parse_general), text
