"""One build's conversation with the remote cache: lookups, downloads, uploads, their stats.

The build calls three things (``RemoteSessionLike`` in build.py): ``lookup``, ``ensure_local``
and ``publish``. The session guarantees that a remote which is down, slow or failing never
fails a build: every remote call runs on a bounded thread pool with a deadline; the first
failure or timeout marks the session *unavailable*, after which every call answers at once as
a miss and the build goes on locally.

It connects lazily: a build that finds everything in the local cache never touches the remote
(``stats.calls`` stays 0). Every downloaded blob is verified against its digest before it is
adopted into the local CAS; results that pickle (``ActionResult.pickled``) never move.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import Any, TypeVar

import msgspec

from mlbuild.cache.cas import CorruptBlob, MissingBlob
from mlbuild.cache.memo import Memo
from mlbuild.cache.records import ActionResult, ArtifactRef, RemoteStats
from mlbuild.cache.store import LocalStore
from mlbuild.engine.interfaces import InvalidEntry, RemoteCache, RemoteCacheSettings
from mlbuild.engine.run.daemon_pool import DaemonPool

__all__ = ["RemoteSession", "last_stats", "open_session"]

T = TypeVar("T")

# A transfer's deadline is the configured timeout plus its size at this (slow) rate, so a large
# blob on a slow link is not cut off while a stalled one still ends.
MIN_RATE = 4 * 1024 * 1024  # bytes per second
# Above this size an upload first asks whether the remote has the blob; below it, a PUT costs
# no more than the question, and content-addressed writes are idempotent.
CHECK_BEFORE_UPLOAD = 1024 * 1024
# A blob up to this size comes down into memory, is hashed there and written to the CAS only if
# it matches (one file created per blob); a larger one streams to a temp file in the CAS.
SMALL_DOWNLOAD = 4 * 1024 * 1024
STATS_MEMO = "last"  # in the remote-stats memo keyspace
# Added to the deadlines of the calls made before the remote first answered (client setup).
SETUP_ALLOWANCE = 10.0


class _Down(Exception):
    """The remote is (now) unavailable; the caller treats it as a miss."""


class RemoteSession:
    """The remote cache as one build sees it. Thread-safe; ``close`` once at the end."""

    def __init__(self, cache: RemoteCache, store: LocalStore, *, upload: bool = True,
                 timeout: float = 5.0, jobs: int = 8,
                 warn: Callable[[str], None] | None = None) -> None:
        self.cache = cache
        self.store = store
        self.upload = upload
        self.timeout = timeout
        self.jobs = max(1, jobs)
        self.stats = RemoteStats(url=cache.url)
        self._warn = warn or _stderr_warning
        self._lock = threading.Lock()
        # Daemon threads: a call stuck on a silent remote is abandoned at its deadline and never
        # holds the process at exit (ThreadPoolExecutor joins its threads then).
        self._transfers: DaemonPool | None = None
        self._publisher: DaemonPool | None = None
        self._pending: list[Future[bool]] = []
        self._bad: set[str] = set()  # digests seen corrupt on the remote: re-upload them
        self._lookups: dict[str, Future[ActionResult | None]] = {}  # prefetched entries
        self._connected = threading.Event()  # set once the remote has answered a call

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self.stats.state != "unavailable"

    def _pool(self) -> DaemonPool:
        with self._lock:
            if self._transfers is None:
                self._transfers = DaemonPool(self.jobs, "mlbuild-remote")
            return self._transfers

    def _mark_down(self, reason: str) -> None:
        with self._lock:
            if self.stats.state != "unavailable":
                self.stats.state = "unavailable"
                self.stats.reason = reason
                first = True
            else:
                first = False
        if first:
            self._warn(f"remote cache {self.cache.url} is unavailable ({reason}); going on locally")

    def _count_call(self) -> None:
        with self._lock:
            self.stats.calls += 1
            if self.stats.state == "unused":
                self.stats.state = "available"

    def _call(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """``fn(*args)`` on the pool, within the deadline; any failure makes the remote down."""
        if not self.available:
            raise _Down()
        self._count_call()
        return self._await(self._pool().submit(fn, *args), timeout)

    def _await(self, future: Future[T], timeout: float | None = None) -> T:
        limit = (timeout or self.timeout) + self._setup_allowance()
        try:
            result = future.result(timeout=limit)
        except InvalidEntry:
            self._connected.set()
            raise
        except TimeoutError:
            future.cancel()
            self._mark_down(f"no answer within {timeout or self.timeout:.1f}s")
            raise _Down() from None
        except Exception as exc:  # any transport error: the build must go on without it
            self._mark_down(_describe(exc))
            raise _Down() from None
        self._connected.set()
        return result

    def _setup_allowance(self) -> float:
        """Extra time for the calls made before the remote first answered: they include
        importing the filesystem's client and creating it (seconds of local work on a busy
        machine), which the remote timeout is not meant to cut short."""
        return 0.0 if self._connected.is_set() else SETUP_ALLOWANCE

    def _deadline(self, nbytes: int) -> float:
        return self.timeout + nbytes / MIN_RATE + self._setup_allowance()

    def _transfer_all(self, move: Callable[[str, int], bool], blobs: dict[str, int], what: str) -> bool:
        """``move`` every blob (digest -> size) on the pool, all within one deadline; a transfer
        still running at the deadline marks the remote down."""
        futures = [self._pool().submit(move, d, size) for d, size in blobs.items()]
        done, not_done = wait(futures, timeout=self._deadline(sum(blobs.values())))
        if not_done:
            for f in not_done:
                f.cancel()
            self._mark_down(f"{what} did not finish in time")
            return False
        return all(f.result() for f in done)

    # -- what the build calls ------------------------------------------------------------

    def prefetch(self, keys: list[str]) -> None:
        """Start looking up several keys at once (a wide level of the graph costs one round
        trip, not one per action); ``lookup`` then takes the answers."""
        if not self.available:
            return
        for key in keys:
            if key not in self._lookups:
                self._count_call()
                self._lookups[key] = self._pool().submit(self.cache.get_action, key)

    def lookup(self, key: str) -> ActionResult | None:
        """The remote's entry for ``key``, or None (a miss, a refused entry, or no remote)."""
        try:
            prefetched = self._lookups.pop(key, None)
            if prefetched is not None and self.available:
                result = self._await(prefetched)
            else:
                result = self._call(self.cache.get_action, key)
        except _Down:
            return None
        except InvalidEntry as exc:
            with self._lock:
                self.stats.rejected += 1
                self.stats.misses += 1
            self._warn(f"remote cache: rejected {exc}")
            return None
        with self._lock:
            if result is None:
                self.stats.misses += 1
            elif result.pickled or any(o.codec == "pickle" for o in result.outputs):
                # Nothing from a shared cache is unpickled: such an entry is not used.
                self.stats.rejected += 1
                self.stats.misses += 1
                result = None
            else:
                self.stats.hits += 1
        return result

    def ensure_local(self, refs: list[ArtifactRef]) -> bool:
        """Download the refs' blobs missing from the local CAS; False unless all arrived intact.

        Only the blobs named are fetched (a tree's entries are the caller's to ask for).
        """
        if any(r.codec == "pickle" for r in refs):
            return False
        wanted = {r.digest: r.size for r in refs if not self.store.cas.has(r.digest)}
        if not wanted:
            return True
        if not self.available:
            return False
        return self._transfer_all(self._download, wanted, "a download")

    def _download(self, digest: str, size: int) -> bool:
        if not self.available:
            return False
        self._count_call()
        cas = self.store.cas
        tmp: str | None = None
        data: bytes | None = None
        try:
            if size <= SMALL_DOWNLOAD:
                data = self.cache.read_blob(digest, SMALL_DOWNLOAD)
            if data is None:  # large (or larger than its ref said): streamed, never whole in memory
                tmp = cas.temp_path()
                actual = self.cache.fetch_blob(digest, tmp, size)
        except FileNotFoundError:
            _discard(tmp)
            self._connected.set()
            with self._lock:
                self.stats.misses += 1
            self._warn(f"remote cache: blob {digest} is missing on the remote")
            return False
        except Exception as exc:  # a transport error: the remote is gone for this build
            _discard(tmp)
            self._mark_down(_describe(exc))
            return False
        self._connected.set()
        if data is not None:  # hashed before it is written: a mismatch never reaches the CAS
            actual, got = cas.put_verified(digest, data), len(data)
        else:
            got = os.path.getsize(tmp) if tmp is not None else 0
        if actual != digest:
            _discard(tmp)
            with self._lock:
                self.stats.corrupt += 1
                self.stats.misses += 1
                self._bad.add(digest)
            self._warn(f"remote cache: blob {digest} is corrupt on the remote (its bytes hash to "
                       f"{actual}); not used")
            return False
        if tmp is not None:
            cas.adopt_file(tmp, digest)
        with self._lock:
            self.stats.blobs_down += 1
            self.stats.bytes_down += got
        return True

    def publish(self, result: ActionResult) -> None:
        """Upload a result in the background: its blobs first, then its entry."""
        self._in_background(self._publish, result)

    def publish_entry(self, result: ActionResult) -> None:
        """Write the entry of a result whose blobs a remote worker pushed already (its step
        ran where the remote cache is the only thing shared): the entry, last."""
        self._in_background(self._publish_entry, result)

    def _in_background(self, upload: Callable[[ActionResult], bool], result: ActionResult) -> None:
        if not self.upload or not self.available or result.pickled:
            return
        with self._lock:
            if self._publisher is None:
                self._publisher = DaemonPool(2, "mlbuild-publish")
            self._pending.append(self._publisher.submit(upload, result))

    def _publish_entry(self, result: ActionResult) -> bool:
        try:
            self._call(self.cache.put_action, result)
        except (_Down, InvalidEntry):
            return False
        with self._lock:
            self.stats.entries_up += 1
        return True

    def publish_now(self, result: ActionResult) -> bool:
        """Upload a result and wait; True when its entry is on the remote."""
        if result.pickled or not self.available:
            return False
        return self._publish(result)

    def _publish(self, result: ActionResult) -> bool:
        try:
            blobs = self._blobs_of(result)
        except (CorruptBlob, MissingBlob) as exc:
            self._warn(f"remote cache: not publishing {result.label}: {exc}")
            return False
        if not self._transfer_all(self._upload, blobs, "an upload"):
            return False  # no entry without all of its blobs
        return self._publish_entry(result)

    def _blobs_of(self, result: ActionResult) -> dict[str, int]:
        from mlbuild.cache.trees import read_tree

        blobs: dict[str, int] = {}
        for ref in result.outputs:
            blobs[ref.digest] = self.store.cas.size(ref.digest) if ref.codec == "tree" else ref.size
            if ref.codec == "tree":
                for entry in read_tree(self.store.cas, ref.digest):
                    blobs[entry.digest] = entry.size
        if result.log_digest and self.store.cas.has(result.log_digest):
            blobs[result.log_digest] = self.store.cas.size(result.log_digest)
        return blobs

    def _upload(self, digest: str, size: int) -> bool:
        if not self.available:
            return False
        try:
            self._count_call()
            if size > CHECK_BEFORE_UPLOAD and digest not in self._bad and self.cache.has_blob(digest):
                return True
            self.cache.push_blob(digest, self.store.cas.path_str(digest))
        except Exception as exc:  # a transport error (a missing local blob is caught earlier)
            self._mark_down(_describe(exc))
            return False
        self._connected.set()
        with self._lock:
            self.stats.blobs_up += 1
            self.stats.bytes_up += size
        return True

    # -- the end -------------------------------------------------------------------------

    def close(self) -> None:
        """Wait for uploads in flight (each bounded by its deadline), record the stats."""
        with self._lock:
            pending, self._pending = self._pending, []
        for future in pending:
            future.result()  # each publish is bounded by its own deadlines
        for lookup in self._lookups.values():
            lookup.cancel()  # prefetched, never asked for: not waited for
        self._lookups.clear()
        for pool in (self._publisher, self._transfers):
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        self.stats.finished = time.time()
        Memo[RemoteStats](self.store.index, "remote-stats", RemoteStats).put_many({STATS_MEMO: self.stats})

    def summary(self) -> dict[str, Any]:
        """The remote's part of a build summary (``--json`` and the summary line)."""
        out: dict[str, Any] = msgspec.to_builtins(self.stats)
        out.pop("finished", None)
        return out


def last_stats(store: LocalStore) -> RemoteStats | None:
    """The stats of the last build or command that used a remote, as ``close`` recorded them."""
    return Memo[RemoteStats](store.index, "remote-stats", RemoteStats).get(STATS_MEMO)


def open_session(settings: RemoteCacheSettings, store: LocalStore, *, upload: bool = True,
                 jobs: int = 8) -> RemoteSession:
    """A session on the remote cache ``settings`` names (resolved by engine/run/settings.py)."""
    from mlbuild.engine.run.backends import open_remote_cache

    return RemoteSession(open_remote_cache(settings), store, upload=upload, timeout=settings.timeout,
                         jobs=max(8, jobs))


def _discard(path: str | None) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


def _stderr_warning(message: str) -> None:
    sys.stderr.write(f"mlbuild: warning: {message}\n")
    sys.stderr.flush()
