"""Checking a cached result's trace against the workspace, the installed distributions and the
environment now: a hit is taken only while everything its step really used is unchanged.

Checked without importing anything of the project: source and read files through the stat
cache (one ``stat`` per file per build, digests memoized), versions through the index memo
keyed by the site signature, variables from ``os.environ``.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlbuild.cache.digest import digest_bytes, digest_value
from mlbuild.cache.memo import Memo
from mlbuild.cache.records import Trace
from mlbuild.cache.stat_cache import StatCache
from mlbuild.engine.keys.environment import HostEnvironment

_SECRET_WORDS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")
_MAX_PLAIN_ENV = 120


_normalized: dict[str, str] = {}  # raw digest -> normalized digest (per process)


def source_digest(data: bytes, raw: str | None = None) -> str:
    """What a trace records for a source file: the digest of its normalized text (comments,
    docstrings and formatting do not count), or of its bytes when it does not parse."""
    raw = raw or digest_bytes(data)
    found = _normalized.get(raw)
    if found is None:
        from mlbuild.engine.keys.pysource import normalized_text  # only when a traced file needs it

        text = normalized_text(data)
        found = _normalized[raw] = raw if text is None else "py:" + digest_bytes(text.encode())
    return found


def env_value(name: str, value: str | None) -> str | None:
    """How a variable's value is kept in a trace: plain when short and not secret-looking,
    else only its digest (traces travel to a shared cache)."""
    if value is None:
        return None
    upper = name.upper()
    if len(value) > _MAX_PLAIN_ENV or any(w in upper for w in _SECRET_WORDS):
        return "xxh3:" + digest_bytes(value.encode(errors="surrogateescape"))
    return value


def listing_digest(path: str) -> str:
    """What a directory listing is recorded as: the digest of its sorted entry names."""
    try:
        return "dir:" + digest_value(sorted(os.listdir(path)))
    except FileNotFoundError:
        return ""
    except NotADirectoryError:
        return "dir:notadir"


NO_TRACE = "its cached result has no trace (written by an older mlbuild)"


class TraceChecker:
    """Says why a trace no longer holds (or None when it does); memoized per build."""

    def __init__(self, root: str | os.PathLike[str], stat_cache: StatCache, host_env: HostEnvironment) -> None:
        self.root = Path(root)
        self.stat_cache = stat_cache
        self.host_env = host_env
        self._digests: dict[str, str] = {}
        self._versions: dict[str, str | None] = {}
        self._sources: dict[str, str] = {}  # raw digest -> normalized source digest
        self._new_sources: dict[str, str] = {}
        self._memo: Memo[str] = Memo(stat_cache.index, "source", str)

    def source(self, path: str) -> str:
        """The digest a trace records for a source file now: of its normalized text."""

        raw = self.digest(path)
        if not raw or raw.startswith("dir:"):
            return raw
        found = self._sources.get(raw)
        if found is None:
            memo_key = raw
            found = self._memo.get(memo_key)
            if found is None:
                try:
                    found = source_digest((self.root / path).read_bytes(), raw)
                except OSError:
                    return ""
                self._new_sources[memo_key] = found
            self._sources[raw] = found
        return str(found)

    def flush(self) -> None:
        if self._new_sources:
            self._memo.put_many(self._new_sources)
            self._new_sources = {}

    def digest(self, path: str) -> str:
        """The digest a trace would record for ``path`` now ("" when it is missing)."""
        found = self._digests.get(path)
        if found is None:
            full = self.root / path
            try:
                found = self.stat_cache.digest(full) if not full.is_dir() else listing_digest(str(full))
            except OSError:
                found = ""
            self._digests[path] = found
        return found

    def versions(self, dists: list[str]) -> dict[str, str | None]:
        missing = [d for d in dists if d not in self._versions]
        if missing:
            self._versions.update(self.host_env.dist_versions(missing))
        return {d: self._versions[d] for d in dists}

    def problem(self, trace: Trace | None, static: frozenset[str] = frozenset()) -> str | None:
        """Why a result with this trace must not be used now, or None when it still holds.

        ``static`` are the files the key's code digest already covers: a change there that
        matters changed the key itself, and one that does not (an unused function) must not
        rebuild anything.
        """
        if trace is None:
            return NO_TRACE
        for path, digest in trace.files.items():
            if path in static:
                continue
            if self.source(path) != digest:
                return f"{path} {'is gone' if self.source(path) == '' else 'changed'} (loaded at run time)"
        if trace.packages:
            now = self.versions(list(trace.packages))
            for dist, version in trace.packages.items():
                if now[dist] != version:
                    by = trace.via.get(dist)
                    who = f" (imported by {by})" if by else ""
                    return f"{dist} {version} -> {now[dist] or 'not installed'}{who}"
        for name, value in trace.env.items():
            current = env_value(name, os.environ.get(name))
            if current != value:
                return f"env {name} {_shown(value)} -> {_shown(current)}"
        for path, digest in trace.reads.items():
            now_digest = listing_digest(str(self.root / path)) if digest.startswith("dir:") else self.digest(path)
            if now_digest != digest:
                what = "listing" if digest.startswith("dir:") else "file"
                return f"{path} changed (undeclared {what} read at run time)"
        return None


def _shown(value: str | None) -> str:
    if value is None:
        return "unset"
    return "(secret)" if value.startswith("xxh3:") else value
