"""Static code digests: transitive over project code, blind to comments and formatting,
computed without importing the rule's module."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlbuild.engine.errors import UserError
from mlbuild.engine.keys.codehash import CodeHasher

TRAIN = '''
import numpy as np
import json
from mlbuild import rule, Config
from lib.steps import fit

SCALE = 2


class TrainConfig(Config):
    epochs: int = 3


@rule(retries=1)
def train(data: dict, config: TrainConfig) -> float:
    """Train it."""
    return fit(data, config.epochs) * SCALE + np.float64(json.loads("1"))
'''

STEPS = '''
from lib import optim


def fit(data, epochs):
    return optim.make_optimizer(epochs)
'''

OPTIM = '''
from lib.params import param_groups


def make_optimizer(epochs):
    return param_groups(epochs) + 1
'''

PARAMS = '''
def param_groups(epochs):
    return epochs * 2


def unrelated():
    return 42
'''


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "__init__.py").write_text("")
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "lib" / "steps.py").write_text(STEPS)
    (tmp_path / "lib" / "optim.py").write_text(OPTIM)
    (tmp_path / "lib" / "params.py").write_text(PARAMS)
    return tmp_path


def digest(ws: Path) -> str:
    return CodeHasher(ws).digest("train.py", "train").digest


def test_reaches_helpers_transitively_and_collects_third_party(ws: Path) -> None:
    result = CodeHasher(ws).digest("train.py", "train")
    names = {f.name for f in result.manifest.functions}
    assert {"train.train", "train.SCALE", "train.TrainConfig", "lib.steps.fit", "lib.optim.make_optimizer", "lib.params.param_groups"} <= names
    assert "lib.params.unrelated" not in names
    assert result.manifest.imports == ["mlbuild", "numpy"]  # json is the standard library
    assert result.options.retries == 1
    assert [p for p, _ in result.params] == ["data", "config"]


def test_helper_three_calls_away_changes_the_digest(ws: Path) -> None:
    before = digest(ws)
    p = ws / "lib" / "params.py"
    p.write_text(p.read_text().replace("epochs * 2", "epochs * 3"))
    assert digest(ws) != before


def test_unreached_code_does_not_change_the_digest(ws: Path) -> None:
    before = digest(ws)
    p = ws / "lib" / "params.py"
    p.write_text(p.read_text().replace("return 42", "return 43"))
    assert digest(ws) == before


@pytest.mark.parametrize(
    "old,new",
    [("SCALE = 2", "SCALE = 3"), ("epochs: int = 3", "epochs: int = 4"), ("@rule(retries=1)", "@rule(retries=2)")],
)
def test_constants_classes_and_rule_options_count(ws: Path, old: str, new: str) -> None:
    before = digest(ws)
    p = ws / "train.py"
    p.write_text(p.read_text().replace(old, new))
    assert digest(ws) != before


comment_lines = st.lists(st.text(alphabet="abc xyz#'\"", max_size=20).map(lambda t: "# " + t), max_size=3)


@settings(max_examples=25, deadline=None)
@given(comments=comment_lines, blank=st.integers(0, 3), doc=st.text(alphabet="abc \n", max_size=30))
def test_comments_docstrings_and_formatting_do_not_count(tmp_path_factory: pytest.TempPathFactory, comments: list[str], blank: int, doc: str) -> None:
    base = tmp_path_factory.mktemp("ws")
    variant = tmp_path_factory.mktemp("ws")
    for root in (base, variant):
        (root / "lib").mkdir()
        for name, text in (("steps.py", STEPS), ("optim.py", OPTIM), ("params.py", PARAMS)):
            (root / "lib" / name).write_text(text)
    (base / "train.py").write_text(TRAIN)
    noisy = TRAIN.replace('"""Train it."""', '"""' + doc.replace('"', "") + '"""')
    noisy = noisy.replace("SCALE = 2", "".join(c + "\n" for c in comments) + "\n" * blank + "SCALE = (\n    2\n)  # two")
    noisy = noisy.replace("def train(data: dict, config: TrainConfig) -> float:", "def train(\n    data: dict,\n    config: TrainConfig,\n) -> float:  # the step")
    (variant / "train.py").write_text(noisy)
    assert digest(base) == digest(variant)


def test_digest_does_not_import_the_module(ws: Path) -> None:
    (ws / "train.py").write_text(TRAIN.replace("import numpy as np", "import numpy as np\nimport mlbuild_never_imported_marker"))
    CodeHasher(ws).digest("train.py", "train")
    assert "mlbuild_never_imported_marker" not in sys.modules
    assert "train" not in sys.modules and "lib.steps" not in sys.modules


def test_not_a_rule_and_missing_function_are_clear_errors(ws: Path) -> None:
    (ws / "plain.py").write_text("def f():\n    return 1\n")
    with pytest.raises(UserError, match="not decorated with @rule"):
        CodeHasher(ws).digest("plain.py", "f", "//x:y")
    with pytest.raises(UserError, match="defines no function 'nope'"):
        CodeHasher(ws).digest("plain.py", "nope", "//x:y")
    (ws / "broken.py").write_text("def f(:\n")
    with pytest.raises(UserError, match="broken.py:1: syntax error"):
        CodeHasher(ws).digest("broken.py", "f")


def test_module_used_as_a_whole_counts_entirely(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("X = 1\n\ndef g():\n    return 2\n")
    (tmp_path / "r.py").write_text(textwrap.dedent("""
        import helpers
        from mlbuild import rule

        @rule
        def r():
            return getattr(helpers, "g")()
    """))
    before = CodeHasher(tmp_path).digest("r.py", "r").digest
    (tmp_path / "helpers.py").write_text("X = 1\n\ndef g():\n    return 3\n")
    assert CodeHasher(tmp_path).digest("r.py", "r").digest != before
