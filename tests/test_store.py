"""The local store and artifact encodings: canonical bytes, verified reads, atomic entries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlbuild.cache.cas import CAS, CorruptBlob, MissingBlob
from mlbuild.cache.digest import digest_file
from mlbuild.cache.index import ATIME_RESOLUTION, Index
from mlbuild.cache.memo import Memo
from mlbuild.cache.records import ActionResult, ArtifactRef, FileStat, KeySpec
from mlbuild.cache.stat_cache import StatCache
from mlbuild.cache.trees import materialize_tree, put_tree
from mlbuild.rules import codecs as artifacts

plain = st.recursive(
    st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.text(max_size=10), st.booleans(), st.none()),
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=5), c, max_size=4)),
    max_leaves=10,
)
arrays = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
)


@given(plain)
def test_plain_data_round_trips_with_stable_bytes(value: object) -> None:
    codec, data = artifacts.encode(value)
    assert codec == "msgpack"
    assert artifacts.decode(codec, data) == value
    if isinstance(value, dict):  # the same dict in another insertion order: the same bytes
        assert artifacts.encode(dict(reversed(list(value.items()))))[1] == data


@given(arrays)
def test_arrays_round_trip_exactly(arr: np.ndarray) -> None:
    codec, data = artifacts.encode(arr)
    assert codec == "npy"
    back = artifacts.decode(codec, data)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    assert back.tobytes() == np.asarray(arr, order="C").tobytes()
    nested = {"b": arr, "a": [arr]}
    codec, data = artifacts.encode(nested)
    back = artifacts.decode(codec, data)
    assert back["b"].tobytes() == np.asarray(arr, order="C").tobytes() and back["a"][0].dtype == arr.dtype


def test_encoding_is_identical_in_another_process() -> None:
    value = {"z": np.arange(6, dtype=np.float32).reshape(2, 3), "a": {"y": 1, "b": [1.5, "x"]}}
    child = (
        "import sys, numpy as np; from mlbuild.rules import codecs as artifacts;"
        "v={'a': {'b': [1.5, 'x'], 'y': 1}, 'z': np.arange(6, dtype=np.float32).reshape(2, 3)};"
        "sys.stdout.buffer.write(artifacts.encode(v)[1])"
    )
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, check=True, env=dict(os.environ, PYTHONHASHSEED="7")).stdout
    assert out == artifacts.encode(value)[1]


def test_structs_decode_to_the_annotation() -> None:
    class Metrics(msgspec.Struct):
        loss: float
        weights: np.ndarray

    codec, data = artifacts.encode(Metrics(0.5, np.ones(3)))
    back = artifacts.decode(codec, data, Metrics)
    assert isinstance(back, Metrics) and back.weights.tolist() == [1.0, 1.0, 1.0]


def test_no_pickle_unless_opted_in() -> None:
    class Opaque:
        pass

    with pytest.raises(artifacts.EncodingError):
        artifacts.encode(Opaque())
    with pytest.raises(artifacts.EncodingError):
        artifacts.encode(np.array([object()], dtype=object))
    codec, data = artifacts.encode({1, 2}, allow_pickle=True)
    assert codec == "msgpack"  # sets have a data encoding; pickle is the last resort
    with pytest.raises(artifacts.EncodingError, match="refusing to unpickle"):
        artifacts.decode("pickle", b"\x80\x04K\x01.")


def test_tensors_use_safetensors() -> None:
    import torch
    state = {"w": torch.arange(4, dtype=torch.float32), "b": torch.zeros(2)}
    codec, data = artifacts.encode(state)
    assert codec == "safetensors"
    back = artifacts.decode(codec, data)
    assert torch.equal(back["w"], state["w"]) and artifacts.encode(back)[1] == data


def test_cas_verifies_every_read(tmp_path: Path) -> None:
    cas = CAS(tmp_path / "cas")
    digest = cas.put_bytes(b"hello world")
    assert cas.get_bytes(digest) == b"hello world"
    path = cas.path(digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"hello w0rld")
    with pytest.raises(CorruptBlob):
        cas.get_bytes(digest)
    assert not cas.has(digest)  # a corrupt blob is removed, so the next build re-creates it
    with pytest.raises(MissingBlob):
        cas.get_bytes(digest)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    d, size = cas.put_file(big)
    assert (d, size) == digest_file(big)
    assert cas.verified_path(d).read_bytes() == big.read_bytes()
    assert list((tmp_path / "tmp").iterdir()) == []  # no temp files left behind


def test_trees_round_trip(tmp_path: Path) -> None:
    cas = CAS(tmp_path / "cas")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "sub" / "run.sh", 0o755)
    digest, size = put_tree(cas, src)
    assert size == 11
    assert put_tree(cas, src)[0] == digest
    dest = tmp_path / "dest"
    materialize_tree(cas, digest, dest)
    assert (dest / "a.txt").read_text() == "a" and os.access(dest / "sub" / "run.sh", os.X_OK)


def test_index_entries_and_reverse_indexes(tmp_path: Path) -> None:
    index = Index(tmp_path / "index")
    spec = KeySpec(1, "r.py:f", "c" * 32, {"x": "d" * 32}, {}, "e" * 32)
    result = ActionResult(key="k" * 32, label="//a:b", rule="r.py:f", outputs=[ArtifactRef("value", "f" * 32, "msgpack", 3)], key_spec=spec)
    index.put_action(result)
    assert index.get_action("k" * 32) == result
    assert index.producer_of("f" * 32) == "k" * 32
    assert index.producer_of(result.result_digest()) == "k" * 32
    assert index.consumers_of("d" * 32) == ["k" * 32]
    index.delete_action("k" * 32)
    assert index.get_action("k" * 32) is None


@given(first=st.floats(0, 1e9), later=st.floats(0, 2 * ATIME_RESOLUTION))
@settings(max_examples=25, deadline=None)
def test_a_use_is_recorded_once_per_resolution(tmp_path_factory: pytest.TempPathFactory, first: float, later: float) -> None:
    """cache gc orders entries by last use; a hit within ATIME_RESOLUTION of the recorded use
    leaves it, a later one moves it forward, and an entry never used gets one."""
    index = Index(tmp_path_factory.mktemp("atime") / "index")
    index.touch(["a"], now=first)
    index.touch(["a", "b"], now=first + later)
    used = index.last_used()
    assert used["a"] == (first + later if later >= ATIME_RESOLUTION else first)
    assert used["b"] == first + later
    index.close()


@settings(max_examples=5, deadline=None)
@given(st.binary(min_size=1, max_size=64))
def test_stat_cache_rehashes_changed_files(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    root = tmp_path_factory.mktemp("stat")
    index = Index(root / "index")
    cache = StatCache(index)
    f = root / "f.bin"
    f.write_bytes(content)
    old = os.stat(f)
    os.utime(f, ns=(old.st_atime_ns, old.st_mtime_ns - 10**10))  # not "racy": older than 2 s
    first = cache.digest(f)
    cache.flush()
    assert Memo(index, "stat", FileStat).get(str(f)) is not None
    f.write_bytes(content + b"!")
    assert cache.digest(f) != first


def test_an_entry_that_does_not_decode_is_a_miss(tmp_path: Path) -> None:
    index = Index(tmp_path / "index")
    spec = KeySpec(1, "r.py:f", "c" * 32, {}, {}, "e" * 32)
    good = ActionResult(key="g" * 32, label="//a:g", rule="r.py:f", outputs=[], key_spec=spec)
    index.put_action(good)
    with index.env.begin(write=True, db=index.db["actions"]) as txn:
        txn.put(b"b" * 32, b"\xc1 not msgpack")
    assert index.get_action("b" * 32) is None
    assert [r.key for r in index.iter_actions()] == [good.key]
    assert index.get_actions(["b" * 32, "g" * 32]) == {good.key: good}
