"""How outputs differ: arrays, safetensors, plain data with nested arrays, trees."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save

from mlbuild.cache.cas import CAS
from mlbuild.cache.records import ArtifactRef
from mlbuild.cache.trees import put_tree
from mlbuild.engine.inspect.artifact_diff import (
    diff_arrays,
    diff_artifacts,
    diff_bytes,
    diff_data,
    format_diff,
    read_safetensors,
)
from mlbuild.rules.codecs import encode

FLOATS = st.sampled_from([np.float32, np.float64])


@settings(max_examples=60, deadline=None)
@given(data=st.data(), dtype=FLOATS)
def test_one_changed_element_counts_one_with_the_exact_max_abs_diff(data: st.DataObject, dtype: type) -> None:
    old = data.draw(hnp.arrays(dtype, hnp.array_shapes(max_dims=3, max_side=6),
                               elements=st.floats(-1e6, 1e6, width=32, allow_subnormal=False)))
    index = data.draw(st.integers(0, old.size - 1))
    replacement = dtype(data.draw(st.floats(-1e6, 1e6, width=32, allow_subnormal=False)))
    new = old.copy()
    new.flat[index] = replacement
    assume(old.flat[index].tobytes() != new.flat[index].tobytes())
    d = diff_arrays("w", old, new)
    assert d is not None
    assert d.differing == 1 and d.total == old.size
    assert d.max_abs == abs(float(new.flat[index]) - float(old.flat[index]))
    if float(old.flat[index]) != 0.0:
        assert d.max_rel == d.max_abs / abs(float(old.flat[index]))
    assert diff_arrays("w", old, old.copy()) is None


@settings(max_examples=40, deadline=None)
@given(arr=hnp.arrays(st.sampled_from([np.int32, np.float64, np.uint8, np.bool_]), hnp.array_shapes(max_dims=2)))
def test_identical_arrays_have_no_diff(arr: np.ndarray) -> None:
    assert diff_arrays("a", arr, arr.copy()) is None


def test_bits_count_not_just_values() -> None:
    d = diff_arrays("z", np.array([0.0, np.nan]), np.array([-0.0, np.nan]))
    assert d is not None and d.differing == 1 and d.max_abs == 0.0
    assert diff_arrays("n", np.array([np.nan]), np.array([np.nan])) is None


def test_shape_and_dtype_changes() -> None:
    d = diff_arrays("a", np.zeros((2, 3)), np.zeros((3, 2)))
    assert d is not None and d.note == "shape changed" and d.differing is None
    assert "shape [2, 3] -> [3, 2]" in format_diff(diff_bytes("npy", encode(np.zeros((2, 3)))[1], encode(np.zeros((3, 2)))[1]))[0]
    d = diff_arrays("a", np.array([1, 2, 3], dtype=np.int64), np.array([1.0, 2.5, 3.0], dtype=np.float32))
    assert d is not None and d.note == "dtype changed" and d.differing == 1 and d.max_abs == 0.5


def test_safetensors_names_each_tensor() -> None:
    old = save({"fc.weight": np.ones((2, 2), np.float32), "fc.bias": np.zeros(2, np.float32), "gone": np.ones(1, np.int64)})
    w = np.ones((2, 2), np.float32)
    w[1, 0] = 1.25
    new = save({"fc.weight": w, "fc.bias": np.zeros(2, np.float32), "new": np.ones(3, np.int8)})
    diff = diff_bytes("safetensors", old, new)
    by_name = {a.name: a for a in diff.arrays}
    assert set(by_name) == {"fc.weight", "gone", "new"}
    assert by_name["fc.weight"].differing == 1 and by_name["fc.weight"].max_abs == 0.25
    assert by_name["gone"].note == "removed" and by_name["new"].note == "added"
    lines = format_diff(diff)
    assert "fc.weight: float32[2, 2]: 1 of 4 elements differ, max abs diff 0.25, max rel diff 0.25" in lines


def _bf16_file(values: list[int]) -> bytes:
    raw = struct.pack(f"<{len(values)}H", *values)
    header = json.dumps({"t": {"dtype": "BF16", "shape": [len(values)], "data_offsets": [0, len(raw)]}}).encode()
    return struct.pack("<Q", len(header)) + header + raw


def test_bf16_tensors_are_widened_exactly() -> None:
    assert read_safetensors(_bf16_file([0x3F80, 0x4000]))["t"].tolist() == [1.0, 2.0]
    diff = diff_bytes("safetensors", _bf16_file([0x3F80, 0x4000]), _bf16_file([0x3F80, 0x4040]))
    assert diff.arrays[0].differing == 1 and diff.arrays[0].max_abs == 1.0


def test_plain_data_structural_diff_with_nested_arrays() -> None:
    old = {"metrics": {"train_loss": [0.5, 0.51, 0.51], "epochs": 3}, "w": np.zeros(4), "gone": 1}
    new = {"metrics": {"train_loss": [0.5, 0.51, 0.52], "epochs": 3}, "w": np.array([0.0, 0, 0, 2.0]), "added": "x"}
    diff = diff_bytes("msgpack", encode(old)[1], encode(new)[1])
    lines = format_diff(diff)
    assert "metrics.train_loss[2]: 0.51 -> 0.52" in lines
    assert "gone: 1 -> (removed)" in lines and "added: (absent) -> 'x'" in lines
    assert "w: float64[4]: 1 of 4 elements differ, max abs diff 2, max rel diff inf" in lines


def test_plain_data_lists_only_the_first_differences() -> None:
    diff = diff_data(list(range(100)), list(range(1, 101)), limit=5)
    assert len(diff.values) == 5 and diff.more == 95
    assert diff.values[0].path == "[0]"
    assert format_diff(diff)[-1] == "… and 95 more differences"


def test_tree_diff_lists_files_and_array_files(tmp_path: Path) -> None:
    cas = CAS(tmp_path / "cas")
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "same.txt").write_text("same")
    np.save(a / "w.npy", np.arange(6, dtype=np.float32))
    changed = np.arange(6, dtype=np.float32)
    changed[5] = 7.5
    np.save(b / "w.npy", changed)
    (a / "old.txt").write_text("old")
    (b / "new.txt").write_text("new")
    old_ref = ArtifactRef("files", put_tree(cas, a)[0], "tree", 0)
    new_ref = ArtifactRef("files", put_tree(cas, b)[0], "tree", 0)
    diff = diff_artifacts(old_ref, cas, new_ref, cas)
    changes = {f.path: f.change for f in diff.files}
    assert changes == {"new.txt": "added", "old.txt": "removed", "w.npy": "changed"}
    w = next(f for f in diff.files if f.path == "w.npy")
    assert w.arrays[0].differing == 1 and w.arrays[0].max_abs == 2.5


def test_missing_recorded_bytes_are_said_not_guessed(tmp_path: Path) -> None:
    cas = CAS(tmp_path / "cas")
    present = cas.put_bytes(encode({"a": 1})[1])
    diff = diff_artifacts(ArtifactRef("value", "0" * 32, "msgpack", 1), cas, ArtifactRef("value", present, "msgpack", 1), cas)
    assert diff.kind == "unavailable" and "recorded bytes" in (diff.note or "")
    diff = diff_artifacts(ArtifactRef("value", present, "msgpack", 1), cas, ArtifactRef("value", present, "npy", 1), cas)
    assert diff.kind == "codec"
