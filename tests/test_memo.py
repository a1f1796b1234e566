"""The index's typed memo keyspaces (cache/memo.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from mlbuild.cache.index import Index
from mlbuild.cache.memo import KEYSPACES, Memo
from mlbuild.cache.records import FileStat, RemoteStats


def test_keyspaces_never_see_each_other(tmp_path: Path) -> None:
    index = Index(tmp_path / "index")
    rules: Memo[Any] = Memo(index, "rule", dict[str, int])
    dists: Memo[list[str] | None] = Memo(index, "dist", list[str] | None)
    rules.put_many({"k": {"a": 1}})
    dists.put_many({"k": ["numpy", "2.0"], "gone": None})
    assert rules.get("k") == {"a": 1}
    # A None value is remembered ("not from a distribution"), and told apart from a miss.
    assert dists.get_many(["k", "gone", "nothing"]) == {"k": ["numpy", "2.0"], "gone": None}
    rules.clear()
    assert rules.get("k") is None and dists.get("k") == ["numpy", "2.0"]
    prefixes = [prefix for table, prefix in KEYSPACES.values() if table == "memo"]
    assert len(set(prefixes)) == len(prefixes) and all(prefixes)


def test_a_value_that_no_longer_decodes_is_a_miss(tmp_path: Path) -> None:
    index = Index(tmp_path / "index")
    Memo[Any](index, "remote-stats", Any).put_many({"last": {"calls": "not a number"}, "ok": {"calls": 2}})
    stats: Memo[RemoteStats] = Memo(index, "remote-stats", RemoteStats)
    assert stats.get("last") is None
    assert stats.get_many(["last", "ok"]) == {"ok": RemoteStats(calls=2)}


def test_stat_entries_written_as_plain_lists_still_read(tmp_path: Path) -> None:
    # Before the keyspace was typed, the stat cache stored [size, mtime_ns, inode, digest].
    index = Index(tmp_path / "index")
    Memo[Any](index, "stat", Any).put_many({"/a": [3, 10, 7, "d" * 32]})
    assert Memo(index, "stat", FileStat).get("/a") == FileStat(3, 10, 7, "d" * 32)
    assert msgspec.msgpack.encode(FileStat(3, 10, 7, "d" * 32)) == msgspec.msgpack.encode([3, 10, 7, "d" * 32])


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=20), st.lists(st.text(max_size=8), max_size=3), max_size=10))
def test_what_is_put_is_what_is_got(tmp_path_factory: Any, items: dict[str, list[str]]) -> None:
    index = Index(tmp_path_factory.mktemp("memo") / "index")
    memo: Memo[list[str]] = Memo(index, "dist", list[str])
    memo.put_many(items)
    assert memo.get_many(list(items) + ["\x00missing"]) == items
    index.close()
