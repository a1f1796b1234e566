"""Garbage collection: evict least recently used action entries until the cache fits, then
delete every blob no kept entry refers to (never one that a kept entry needs)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import msgspec

from mlbuild.cache.cas import CorruptBlob, MissingBlob
from mlbuild.cache.memo import Memo
from mlbuild.cache.processes import pid_alive
from mlbuild.cache.records import ActionResult, CodeManifest
from mlbuild.cache.store import LocalStore
from mlbuild.cache.trees import read_tree


class GcReport(msgspec.Struct):
    actions_evicted: int
    actions_kept: int
    blobs_deleted: int
    bytes_before: int
    bytes_after: int
    temp_removed: int = 0  # files and folders left in tmp/ by killed processes


# Temp names carry their writer's pid (``tmp/blob-p<pid>-…`` from cas.py, ``tmp/action-p<pid>-…``
# from engine/run/runner.py): one whose process still runs on this machine is never removed,
# however old (even with --min-age 0 during a build); ``tmp/live`` is live_logs.py's.
_PID_PREFIX = re.compile(r"^[a-z]+-p(\d+)-")


def remove_stale_temp(tmp: Path, min_age: float, now: float | None = None) -> int:
    """Remove what killed processes left in the cache's ``tmp/`` (half-written blobs, scratch
    folders of steps): entries older than ``min_age`` seconds whose process is gone."""
    now = time.time() if now is None else now
    removed = 0
    try:
        entries = list(os.scandir(tmp))
    except OSError:
        return 0
    for entry in entries:
        if entry.name == "live":
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < min_age:
                continue
        except FileNotFoundError:
            continue
        owner = _PID_PREFIX.match(entry.name)
        if owner and pid_alive(int(owner.group(1))):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
        removed += 1
    return removed



class _References:
    """The blobs an entry keeps alive: outputs (and tree members), its log, and the code and
    environment manifests of its key with the function sources they list (lineage and
    ``why`` read those)."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self._code: dict[str, set[str]] = {}

    def of(self, result: ActionResult) -> set[str]:
        blobs = {o.digest for o in result.outputs}
        if result.log_digest:
            blobs.add(result.log_digest)
        for o in result.outputs:
            if o.codec == "tree":
                try:
                    blobs.update(e.digest for e in read_tree(self.store.cas, o.digest))
                except (CorruptBlob, MissingBlob):
                    pass
        blobs.add(result.key_spec.env)
        return blobs | self._code_blobs(result.key_spec.code)

    def _code_blobs(self, code: str) -> set[str]:
        if code not in self._code:
            blobs = {code}
            try:
                manifest = _manifest_dec.decode(self.store.cas.get_bytes(code))
                blobs.update(f.source for f in manifest.functions)
            except (CorruptBlob, MissingBlob, msgspec.DecodeError):
                pass
            self._code[code] = blobs
        return self._code[code]


_manifest_dec = msgspec.msgpack.Decoder(CodeManifest)


def collect(store: LocalStore, max_size: int, min_age: float = 3600.0) -> GcReport:
    """Keep the most recently used entries whose blobs fit in ``max_size`` bytes; evict the
    rest, then delete every blob no kept entry refers to. A blob younger than ``min_age``
    seconds is spared, since a build in progress may not have recorded its entry yet."""
    sizes = {d: store.cas.size(d) for d in store.cas.digests()}
    before = sum(sizes.values())
    used = store.index.last_used()
    results = sorted(store.index.iter_actions(), key=lambda r: used.get(r.key, 0.0), reverse=True)
    refs = _References(store)
    kept_blobs: set[str] = set()
    total = 0
    evict = []
    for r in results:
        blobs = refs.of(r)
        extra = sum(sizes.get(b, 0) for b in blobs - kept_blobs)
        if total + extra <= max_size:
            kept_blobs |= blobs
            total += extra
        else:
            evict.append(r.key)
    for key in evict:
        store.index.delete_action(key)
    now = time.time()
    deleted = 0
    for digest in sizes.keys() - kept_blobs:
        try:
            if now - store.cas.path(digest).stat().st_mtime < min_age:
                continue
        except FileNotFoundError:
            continue
        store.cas.delete(digest)
        deleted += 1
    if deleted:
        # Remembered code digests let a build skip storing manifests and sources again; some
        # of those blobs may be gone now, so the next build re-stores them.
        Memo[Any](store.index, "rule", Any).clear()
    after = sum(s for d, s in sizes.items() if store.cas.has(d))
    temp = remove_stale_temp(store.cas.tmp, min_age, now)
    return GcReport(len(evict), len(results) - len(evict), deleted, before, after, temp)
