"""The LMDB index of the local store: action cache, lineage indexes, stat cache, build records.

One environment, several named databases; every write is one LMDB transaction, so a build
killed at any moment leaves either the old or the new entry, never half of one. Nothing outside
``cache/`` opens a transaction: the memo tables are read and written through the typed
keyspaces of ``cache/memo.py``, everything else through this class's methods.
"""

from __future__ import annotations

import functools
import os
import struct
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import lmdb
import msgspec

from mlbuild.cache.errors import StoreError, describe, is_read_only, store_error
from mlbuild.cache.records import ActionResult, BuildHead, BuildRecord, Edge

_enc = msgspec.msgpack.Encoder()
_dec_action = msgspec.msgpack.Decoder(ActionResult)
_dec_build = msgspec.msgpack.Decoder(BuildRecord)
_dec_head = msgspec.msgpack.Decoder(BuildHead)
_TS = struct.Struct("<d")
# How fresh an entry's last-use time must be to be left as it is (see Index.touch).
ATIME_RESOLUTION = 600.0

def _action(raw: bytes) -> ActionResult | None:
    """An entry that no longer decodes (damaged, or from an incompatible mlbuild) is a miss."""
    try:
        return _dec_action.decode(raw)
    except msgspec.MsgspecError:
        return None


def _build(raw: bytes) -> BuildRecord | None:
    try:
        return _dec_build.decode(raw)
    except msgspec.MsgspecError:
        return None


# producers: digest -> the latest action to write it (kept for older readers of this cache);
# producer_set: digest -> every action whose output or result has it (identical bytes from two
# steps are two producers); dependents: action key -> the keys of the actions that consumed
# its result, as recorded by the builds that ran or took them.
DBS = ("actions", "producers", "consumers", "atime", "stat", "memo", "builds", "producer_set", "dependents")
_DUPSORT = ("consumers", "producer_set", "dependents")


# LMDB forbids opening one environment twice in a process, so every Index of a path shares
# one handle: path -> [environment, its databases, how many Index objects use it].
_open: dict[str, list[Any]] = {}


# The map starts small and doubles when a write finds it full (MDB_MAP_FULL): reserving a
# large map up front made mlbuild unable to start under a `ulimit -v` below its size.
MIN_MAP_SIZE = 64 << 20
MAX_GROW_ATTEMPTS = 16


def _initial_map_size(path: str) -> int:
    try:
        used = os.path.getsize(os.path.join(path, "data.mdb"))
    except OSError:
        used = 0
    return max(MIN_MAP_SIZE, 2 * used)


class Index:
    """The LMDB side of the local store. Safe to share between processes, and to open more
    than once in one process.

    ``readonly``: opened without a lock file, for a cache on a read-only medium; reads work,
    every write is skipped (``warn`` says so once).
    """

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False,
                 warn: Callable[[str], None] | None = None) -> None:
        if not readonly:
            Path(path).mkdir(parents=True, exist_ok=True)
        self.path = os.path.realpath(path)
        self.readonly = readonly
        self._warn = warn or _stderr_warning
        entry = _open.get(self.path)
        if entry is None:
            env = lmdb.open(
                self.path,
                map_size=_initial_map_size(self.path),
                max_dbs=len(DBS) + 1,
                readahead=False,
                metasync=False,
                # Durable against a killed process (the page cache keeps committed pages);
                # an OS crash may undo the last transactions but never corrupts the index.
                sync=False,
                readonly=readonly,
                lock=not readonly,
                create=not readonly,
            )
            try:
                dbs = {name: env.open_db(name.encode(), dupsort=(name in _DUPSORT), create=not readonly)
                       for name in DBS}
            except BaseException:
                env.close()
                raise
            entry = _open[self.path] = [env, dbs, 0]
        entry[2] += 1
        self.env: lmdb.Environment = entry[0]
        self.db: dict[str, Any] = entry[1]
        self._closed = False
        self._warned = False

    def _skip_write(self) -> None:
        if not self._warned:
            self._warned = True
            self._warn(f"the cache in {os.path.dirname(self.path)} is read-only: cached results are served, "
                       "nothing new is recorded")

    def _grow(self) -> None:
        size = self.env.info()["map_size"]
        self.env.set_mapsize(size * 2)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        entry = _open[self.path]
        entry[2] -= 1
        if entry[2] == 0:
            del _open[self.path]
            self.env.close()

    # -- action cache ---------------------------------------------------------------------

    def get_action(self, key: str) -> ActionResult | None:
        with self.env.begin(db=self.db["actions"]) as txn:
            raw = txn.get(key.encode())
        return None if raw is None else _action(raw)

    def get_actions(self, keys: Iterable[str]) -> dict[str, ActionResult]:
        found: dict[str, ActionResult] = {}
        with self.env.begin(db=self.db["actions"]) as txn:
            for key in keys:
                raw = txn.get(key.encode())
                result = None if raw is None else _action(raw)
                if result is not None:
                    found[key] = result
        return found

    def put_action(self, result: ActionResult) -> None:
        key = result.key.encode()
        with self.env.begin(write=True) as txn:
            txn.put(key, _enc.encode(result), db=self.db["actions"])
            self._put_lineage(txn, key, result)
            for producer in (result.producers or {}).values():
                txn.put(producer.encode(), key, db=self.db["dependents"], dupdata=True)
            txn.put(key, _TS.pack(time.time()), db=self.db["atime"])

    def _put_lineage(self, txn: Any, key: bytes, result: ActionResult) -> None:
        for digest in {result.result_digest(), *(out.digest for out in result.outputs)}:
            txn.put(digest.encode(), key, db=self.db["producers"])
            txn.put(digest.encode(), key, db=self.db["producer_set"], dupdata=True)
        for digest in result.key_spec.inputs.values():
            txn.put(digest.encode(), key, db=self.db["consumers"], dupdata=True)

    def rebuild_lineage(self) -> int:
        """Rebuild the digest indexes (producers, consumers) from the action entries, dropping
        entries that no longer decode; returns how many were dropped. For ``cache fsck``."""
        dropped = 0
        with self.env.begin(write=True) as txn:
            for name in ("producers", "producer_set", "consumers"):
                txn.drop(self.db[name], delete=False)
            cur = txn.cursor(db=self.db["actions"])
            for key, raw in list(cur):
                result = _action(raw)
                if result is None:
                    txn.delete(key, db=self.db["actions"])
                    dropped += 1
                else:
                    self._put_lineage(txn, key, result)
        return dropped

    def delete_action(self, key: str) -> None:
        with self.env.begin(write=True) as txn:
            txn.delete(key.encode(), db=self.db["actions"])
            txn.delete(key.encode(), db=self.db["atime"])

    def touch(self, keys: Iterable[str], now: float | None = None) -> None:
        """Record that these entries were used (``cache gc`` keeps the most recently used). An
        entry used within the last ``ATIME_RESOLUTION`` seconds is not written again: a no-op of
        10,000 steps rewrote 10,000 timestamps every time."""
        when = time.time() if now is None else now
        with self.env.begin(db=self.db["atime"]) as txn:
            stale = [k for k in (key.encode() for key in keys)
                     if (old := txn.get(k)) is None or when - _TS.unpack(old)[0] >= ATIME_RESOLUTION]
        if not stale:
            return
        packed = _TS.pack(when)
        with self.env.begin(write=True, db=self.db["atime"]) as txn:
            for k in stale:
                txn.put(k, packed)

    def last_used(self) -> dict[str, float]:
        with self.env.begin(db=self.db["atime"]) as txn:
            return {k.decode(): _TS.unpack(v)[0] for k, v in txn.cursor()}

    def iter_actions(self) -> Iterator[ActionResult]:
        with self.env.begin(db=self.db["actions"]) as txn:
            for _, raw in txn.cursor():
                result = _action(raw)
                if result is not None:
                    yield result

    def producer_of(self, digest: str) -> str | None:
        """The action key whose output (or whole result) has this digest."""
        with self.env.begin(db=self.db["producers"]) as txn:
            raw = txn.get(digest.encode())
        return None if raw is None else raw.decode()

    def producers_of(self, digest: str) -> list[str]:
        """Every action key whose output (or whole result) has this digest, sorted."""
        found = set(self._dups("producer_set", digest))
        latest = self.producer_of(digest)  # entries written before producer_set existed
        if latest is not None:
            found.add(latest)
        return sorted(found)

    def put_edges(self, edges: Iterable[Edge]) -> None:
        """Remember, for each producer, the consumers a build recorded for it."""
        with self.env.begin(write=True, db=self.db["dependents"]) as txn:
            for edge in edges:
                txn.put(edge.producer.encode(), edge.consumer.encode(), dupdata=True)

    def dependents_of(self, key: str) -> list[str]:
        """The keys of the actions recorded as consuming action ``key``'s result."""
        return self._dups("dependents", key)

    def _dups(self, table: str, key: str) -> list[str]:
        with self.env.begin(db=self.db[table]) as txn:
            cur = txn.cursor()
            if not cur.set_key(key.encode()):
                return []
            return [v.decode() for v in cur.iternext_dup()]

    def consumers_of(self, digest: str) -> list[str]:
        """The action keys that took this digest as an input."""
        return self._dups("consumers", digest)

    # -- build records ---------------------------------------------------------------------

    def put_build(self, record: BuildRecord) -> None:
        with self.env.begin(write=True, db=self.db["builds"]) as txn:
            txn.put(record.id.encode(), _enc.encode(record))

    def get_build(self, build_id: str) -> BuildRecord | None:
        with self.env.begin(db=self.db["builds"]) as txn:
            raw = txn.get(build_id.encode())
            if raw is None:
                # A unique prefix of an id names that build, as with git commits.
                cur = txn.cursor()
                matches = []
                if cur.set_range(build_id.encode()):
                    for k, v in cur:
                        if not k.startswith(build_id.encode()):
                            break
                        matches.append(v)
                raw = matches[0] if len(matches) == 1 else None
        return None if raw is None else _build(raw)

    def list_builds(self) -> list[BuildRecord]:
        """All recorded builds, newest first (ids sort by start time)."""
        with self.env.begin(db=self.db["builds"]) as txn:
            records = [r for r in (_build(v) for _, v in txn.cursor()) if r is not None]
        return sorted(records, key=lambda r: r.started, reverse=True)

    def list_build_heads(self) -> list[BuildHead]:
        """All recorded builds without their graphs (much less to decode), newest first."""
        heads = []
        with self.env.begin(db=self.db["builds"]) as txn:
            for _, raw in txn.cursor():
                try:
                    heads.append(_dec_head.decode(raw))
                except msgspec.MsgspecError:
                    continue
        return sorted(heads, key=lambda r: r.started, reverse=True)

def _stderr_warning(message: str) -> None:
    sys.stderr.write(f"mlbuild: warning: {message}\n")
    sys.stderr.flush()


F = TypeVar("F", bound=Callable[..., Any])


def guarded(write: bool) -> Callable[[F], F]:
    """Every LMDB failure of an index method as a StoreError (one line, see cache/errors.py);
    a full map grows and the call is retried; a map another process grew is adopted; a write
    to a read-only index is skipped. ``self`` is an Index or has one as ``_index``."""

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def guarded_call(self: Any, *args: Any, **kwargs: Any) -> Any:
            index: Index = self if isinstance(self, Index) else self._index
            if write and index.readonly:
                index._skip_write()
                return None
            for _ in range(MAX_GROW_ATTEMPTS):
                try:
                    try:
                        return method(self, *args, **kwargs)
                    except lmdb.MapFullError:
                        index._grow()
                    except lmdb.MapResizedError:
                        index.env.set_mapsize(0)  # another process grew it: take its size
                except lmdb.Error as exc:
                    if write and is_read_only(exc):
                        index.readonly = True
                        index._skip_write()
                        return None
                    raise store_error(exc, os.path.dirname(index.path)) from None
                except OSError as exc:
                    raise store_error(exc, os.path.dirname(index.path)) from None
            raise StoreError(describe(lmdb.MapFullError("MDB_MAP_FULL"), os.path.dirname(index.path)))

        return guarded_call  # type: ignore[return-value]

    return wrap


_WRITES = ("put_action", "delete_action", "touch", "put_edges", "put_build", "rebuild_lineage")
_READS = ("get_action", "get_actions", "last_used", "producer_of", "_dups", "get_build", "list_builds",
          "list_build_heads")
for _name in _WRITES + _READS:
    setattr(Index, _name, guarded(_name in _WRITES)(getattr(Index, _name)))
