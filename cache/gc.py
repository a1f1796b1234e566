"""Garbage collection: evict least recently used action entries until the cache fits, and
delete only blobs that no kept entry refers to."""

from __future__ import annotations

import time

import msgspec

from mlbuild.cache.cas import CorruptBlob, MissingBlob
from mlbuild.cache.records import ActionResult
from mlbuild.cache.store import LocalStore
from mlbuild.cache.trees import read_tree


class GcReport(msgspec.Struct):
    actions_evicted: int
    actions_kept: int
    blobs_deleted: int
    bytes_before: int
    bytes_after: int


def parse_size(text: str) -> int:
    """``500M``, ``10G``, ``1.5GiB``, ``1024`` → bytes."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    num = t.rstrip("KMGT")
    unit = t[len(num):]
    try:
        return int(float(num) * units[unit])
    except (ValueError, KeyError):
        raise ValueError(f"bad size {text!r}: use e.g. 500M, 10G") from None


def _blobs_of(store: LocalStore, result: ActionResult) -> set[str]:
    blobs = {o.digest for o in result.outputs}
    if result.log_digest:
        blobs.add(result.log_digest)
    for o in result.outputs:
        if o.codec == "tree":
            try:
                blobs.update(e.digest for e in read_tree(store.cas, o.digest))
            except (CorruptBlob, MissingBlob):
                pass
    return blobs


def collect(store: LocalStore, max_size: int, protect_seconds: float = 0.0) -> GcReport:
    """Keep the most recently used entries that fit in ``max_size`` bytes of blobs."""
    sizes = {d: store.cas.size(d) for d in store.cas.digests()}
    before = sum(sizes.values())
    used = store.index.last_used()
    results = sorted(store.index.iter_actions(), key=lambda r: used.get(r.key, 0.0), reverse=True)
    kept_blobs: set[str] = set()
    # Blobs no action refers to (code sources, manifests) are small; they are kept only while
    # some kept action needs them, except the ones written very recently (a build in flight).
    now = time.time()
    total = 0
    evict = []
    for r in results:
        blobs = _blobs_of(store, r)
        extra = sum(sizes.get(b, 0) for b in blobs - kept_blobs)
        if total + extra <= max_size:
            kept_blobs |= blobs
            total += extra
        else:
            evict.append(r.key)
    for key in evict:
        store.index.delete_action(key)
    deleted = 0
    referenced_elsewhere = set()
    for r in results:
        if r.key not in evict:
            continue
        referenced_elsewhere |= _blobs_of(store, r)
    for digest in referenced_elsewhere - kept_blobs:
        path = store.cas.path(digest)
        try:
            if now - path.stat().st_mtime < protect_seconds:
                continue
        except FileNotFoundError:
            continue
        store.cas.delete(digest)
        deleted += 1
    after = sum(s for d, s in sizes.items() if store.cas.has(d))
    return GcReport(len(evict), len(results) - len(evict), deleted, before, after)
