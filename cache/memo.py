"""The index's memo keyspaces, each typed: what planning remembers between builds.

| keyspace | LMDB table | key | value | kept by |
| --- | --- | --- | --- | --- |
| ``stat`` | ``stat`` | absolute path | ``FileStat`` | ``cache/stat_cache.py`` |
| ``rule`` | ``memo`` | ``<workspace root>:<rule id>`` | ``RuleInfo`` | ``engine/keys/actions.py`` |
| ``dist`` | ``memo`` | ``<site signature>:<import name>`` | ``[distribution, version]`` or None | ``engine/keys/environment.py`` |
| ``remote-stats`` | ``memo`` | ``last`` | ``RemoteStats`` | ``engine/run/remote_session.py`` |
| ``source`` | ``memo`` | raw digest of a source file | digest of its normalized text | ``engine/keys/trace_check.py`` |
| ``loaded`` | ``memo`` | ``<workspace root>:<label>`` | workspace files a run of it loaded beyond its code digest's (its trace) | ``engine/keys/actions.py`` |

A keyspace is a ``Memo[T]``: its keys live under its own prefix in its table, so keyspaces
never see each other's entries; its values are msgpack, decoded as ``T``. A value that no
longer decodes as ``T`` (damaged, or written by another mlbuild) is a miss. Everything here
can be recomputed: losing it costs time, never a wrong result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Generic, Literal, TypeVar

import msgspec

from mlbuild.cache.index import Index, guarded

__all__ = ["KEYSPACES", "Keyspace", "Memo"]

T = TypeVar("T")

Keyspace = Literal["stat", "rule", "dist", "remote-stats", "source", "loaded"]
KEYSPACES: dict[Keyspace, tuple[str, str]] = {  # keyspace -> (LMDB table, key prefix)
    "stat": ("stat", ""),
    "rule": ("memo", "rule:"),
    "dist": ("memo", "dist:"),
    "remote-stats": ("memo", "remote-stats:"),
    "source": ("memo", "source:"),
    "loaded": ("memo", "loaded:"),
}

_enc = msgspec.msgpack.Encoder()


class Memo(Generic[T]):
    """One keyspace of the memo tables, read and written as values of type ``T``."""

    def __init__(self, index: Index, keyspace: Keyspace, value_type: Any) -> None:
        table, self._prefix = KEYSPACES[keyspace]
        self._index = index
        self._db = index.db[table]
        self._dec: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(value_type)

    def _key(self, key: str) -> bytes:
        return (self._prefix + key).encode()

    def _decode(self, raw: bytes) -> tuple[bool, T | None]:
        try:
            return True, self._dec.decode(raw)
        except msgspec.MsgspecError:
            return False, None

    @guarded(write=False)
    def get(self, key: str) -> T | None:
        """The value under ``key``, or None when there is none (or it no longer decodes)."""
        with self._index.env.begin(db=self._db) as txn:
            raw = txn.get(self._key(key))
        return None if raw is None else self._decode(raw)[1]

    @guarded(write=False)
    def get_many(self, keys: Iterable[str]) -> dict[str, T]:
        """The keys that have a (decodable) value, with it; one read transaction."""
        found: dict[str, T] = {}
        with self._index.env.begin(db=self._db) as txn:
            for key in keys:
                raw = txn.get(self._key(key))
                if raw is not None:
                    ok, value = self._decode(raw)
                    if ok:
                        found[key] = value  # type: ignore[assignment]  # T may itself allow None
        return found

    @guarded(write=True)
    def put_many(self, items: Mapping[str, T]) -> None:
        """Remember every item, in one write transaction."""
        if not items:
            return
        with self._index.env.begin(write=True, db=self._db) as txn:
            for key, value in items.items():
                txn.put(self._key(key), _enc.encode(value))

    @guarded(write=True)
    def clear(self) -> None:
        """Forget every entry of this keyspace (and of no other)."""
        prefix = self._prefix.encode()
        with self._index.env.begin(write=True, db=self._db) as txn:
            cur = txn.cursor()
            if not cur.set_range(prefix):
                return
            while cur.key().startswith(prefix):
                if not cur.delete():
                    break
