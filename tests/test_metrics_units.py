"""The pieces under `metrics`, `exp` and `--set` checks, on their own: flattening values into
metrics and series, gates, grids, and reading a Config class statically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlbuild.engine.errors import UserError
from mlbuild.engine.inspect.metrics import flatten, natural_key, parse_gate, read_series_file
from mlbuild.engine.keys.config_schema import apply_defaults, config_schema, value_matches

names = st.text(alphabet="abcdefghij_", min_size=1, max_size=6)
numbers = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False, width=32))
trees = st.recursive(numbers, lambda children: st.dictionaries(names, children, min_size=1, max_size=4), max_leaves=12)


def leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(leaves(v, f"{prefix}.{k}" if prefix else k))
        return out
    return {prefix or "value": node}


@given(st.dictionaries(names, trees, min_size=1, max_size=5))
def test_every_number_in_nested_data_is_a_metric_under_its_dotted_name(value: dict[str, Any]) -> None:
    scalars, series = flatten(value)
    assert scalars == leaves(value)
    assert series == {}


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=20), names)
def test_lists_of_numbers_are_series(values: list[float], name: str) -> None:
    scalars, series = flatten({"run": {name: values}, "acc": 0.5})
    assert scalars == {"acc": 0.5}
    assert series == {f"run.{name}": [float(v) for v in values]}


def test_rows_and_csv_files_become_one_series_per_column() -> None:
    _, series = flatten({"history": [{"epoch": 1, "loss": 0.5, "acc": 0.7}, {"epoch": 2, "loss": 0.4, "acc": 0.8}]})
    assert series == {"history.loss": [0.5, 0.4], "history.acc": [0.7, 0.8]}
    csv = b"step,loss,note\n0,1.5,a\n1,1.25,b\n"
    assert read_series_file("out/loss.csv", csv) == {"loss.csv.loss": [1.5, 1.25]}
    assert read_series_file("prc.json", b'{"precision": [1, 0.5]}') == {"prc.json.precision": [1.0, 0.5]}


@pytest.mark.parametrize(("text", "change", "violated"), [
    ("accuracy<-0.01", -0.02, True), ("accuracy<-0.01", -0.005, False),
    ("loss>0.05", 0.06, True), ("loss > 0.05", 0.01, False), ("a.b<1e-3", 0.0, True),
])
def test_gates(text: str, change: float, violated: bool) -> None:
    assert parse_gate(text).violated(change) is violated


@pytest.mark.parametrize("text", ["accuracy", "accuracy<<1", "<0.1", "accuracy<=0.1", "accuracy<x"])
def test_bad_gates_are_user_errors(text: str) -> None:
    with pytest.raises(UserError, match="bad --fail-on-regression"):
        parse_gate(text)


def test_natural_order() -> None:
    assert sorted(["t10", "t2", "t1"], key=natural_key) == ["t1", "t2", "t10"]


def test_grid_is_the_cartesian_product() -> None:
    from mlbuild.engine.commands.exp import grid

    assert grid(["//m:t.lr=0.1,0.2", "//m:t.epochs=3,5"]) == [
        ["//m:t.lr=0.1", "//m:t.epochs=3"], ["//m:t.lr=0.1", "//m:t.epochs=5"],
        ["//m:t.lr=0.2", "//m:t.epochs=3"], ["//m:t.lr=0.2", "//m:t.epochs=5"],
    ]
    assert grid(["//m:t.sizes=[1,2]"]) == [["//m:t.sizes=[1,2]"]]
    with pytest.raises(UserError):
        grid(["//m:t.lr=0.1,,0.2"])


def test_config_class_is_read_from_source_through_imports_and_bases(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib/__init__.py").write_text("")
    (tmp_path / "lib/base.py").write_text(
        "import msgspec\nfrom mlbuild import Config\n"
        "class Base(Config):\n    seed: int = 0\n    tags: list[str] = msgspec.field(default_factory=list)\n"
    )
    (tmp_path / "lib/configs.py").write_text(
        "from typing import ClassVar, Literal\nfrom .base import Base\n"
        "class Train(Base):\n    lr: float = 0.1\n    epochs: int\n    mode: Literal['a', 'b'] = 'a'\n"
        "    opt: 'float | None' = None\n    K: ClassVar[int] = 3\n"
    )
    (tmp_path / "rule.py").write_text(
        "import torch\nfrom lib.configs import Train\nfrom mlbuild import rule\n"
        "@rule\ndef train(data: dict, config: Train) -> None: ...\n@rule\ndef plain(data: dict) -> None: ...\n"
    )
    schema = config_schema(tmp_path, "rule.py", "train")
    assert schema is not None and schema.name == "Train" and schema.file == "lib/configs.py"
    assert list(schema.fields) == ["seed", "tags", "lr", "epochs", "mode", "opt"]
    assert schema.defaults() == {"seed": 0, "tags": [], "lr": 0.1, "mode": "a", "opt": None}
    assert not schema.fields["epochs"].has_default
    assert apply_defaults(schema, {"epochs": 3, "lr": 0.2}) == {"seed": 0, "tags": [], "lr": 0.2, "mode": "a", "opt": None, "epochs": 3}
    no_config = config_schema(tmp_path, "rule.py", "plain")
    assert no_config is not None and no_config.fields == {} and no_config.name == ""


@pytest.mark.parametrize(("annotation", "value", "ok"), [
    ("int", 3, True), ("int", 3.5, False), ("int", True, False), ("float", 3, True), ("float", "x", False),
    ("str", "x", True), ("bool", 1, False), ("float | None", None, True), ("Optional[int]", "x", False),
    ("Literal['a', 'b']", "c", False), ("Literal['a', 'b']", "a", True), ("list[int]", [1], True),
    ("MyStruct", {"a": 1}, None), ("dict[str, int]", [], False),
])
def test_static_type_check_of_set_values(annotation: str, value: Any, ok: bool | None) -> None:
    assert value_matches(annotation, value) is ok
