"""Environment digests: an image digest, or the Python version and the versions of the
third-party distributions a step's code imports (so upgrading torch rebuilds only the steps
that import torch)."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable, Iterable

from mlbuild.cache.digest import canonical_bytes, digest_bytes
from mlbuild.cache.index import Index
from mlbuild.cache.memo import Memo
from mlbuild.cache.records import EnvManifest


def site_signature() -> str:
    """Changes whenever a package is installed, removed or upgraded on ``sys.path``."""
    sig = [sys.version]
    cwd = os.getcwd()
    for entry in sys.path:
        # The script's folder or the current directory on the path is not an installation;
        # its mtime changes with every file the user adds.
        if entry in ("", ".", cwd):
            continue
        try:
            sig.append(f"{entry}:{os.stat(entry or '.').st_mtime_ns}")
        except OSError:
            continue
    return digest_bytes("\n".join(sig).encode())


class HostEnvironment:
    """Resolves import names to ``distribution==version`` for the running interpreter.

    Resolutions are memoized in the index under a signature of ``sys.path``, so a no-op
    build does not scan installed distributions.
    """

    def __init__(self, index: Index | None) -> None:
        self.index = index
        self._store: Memo[list[str] | None] | None = None if index is None else Memo(index, "dist", list[str] | None)
        self.signature = site_signature()
        self._memo: dict[str, list[str] | None] = {}
        self._dists: dict[str, list[str]] | None = None
        self._new: dict[str, list[str] | None] = {}

    def _lookup(self, names: Iterable[str]) -> None:
        missing = [n for n in names if n not in self._memo]
        if missing and self._store is not None:
            keys = {f"{self.signature}:{n}": n for n in missing}
            for k, v in self._store.get_many(keys).items():
                self._memo[keys[k]] = v
        for name in missing:
            if name not in self._memo:
                self._memo[name] = self._new[name] = self._resolve(name)

    def _resolve(self, name: str) -> list[str] | None:
        # Imported here: only a memo miss pays for importlib.metadata (a no-op build does not).
        import importlib.metadata
        import importlib.util

        try:  # most import names are their distribution's name: no scan needed
            if importlib.util.find_spec(name) is not None:
                return [name, importlib.metadata.version(name)]
        except (importlib.metadata.PackageNotFoundError, ImportError, ValueError):
            pass
        if self._dists is None:
            self._dists = {k: list(v) for k, v in importlib.metadata.packages_distributions().items()}
        for dist in self._dists.get(name, []) or ([name] if importlib.util.find_spec(name) else []):
            try:
                return [dist, importlib.metadata.version(dist)]
            except importlib.metadata.PackageNotFoundError:
                continue
        return None  # a module on the path but not from an installed distribution

    def dist_versions(self, dists: Iterable[str]) -> dict[str, str | None]:
        """The installed version of each distribution (None when not installed), memoized like
        import names, so checking a trace does not import importlib.metadata on a no-op."""
        wanted = [d for d in dists if f"dist:{d}" not in self._memo]
        self._lookup_raw([f"dist:{d}" for d in wanted], self._resolve_dist)
        out: dict[str, str | None] = {}
        for d in dists:
            found = self._memo.get(f"dist:{d}")
            out[d] = found[1] if found else None
        return out

    def _resolve_dist(self, key: str) -> list[str] | None:
        import importlib.metadata

        name = key.removeprefix("dist:")
        try:
            return [name, importlib.metadata.version(name)]
        except importlib.metadata.PackageNotFoundError:
            return None

    def _lookup_raw(self, keys: list[str], resolve: Callable[[str], list[str] | None]) -> None:
        missing = [k for k in keys if k not in self._memo]
        if missing and self._store is not None:
            found = self._store.get_many([f"{self.signature}:{k}" for k in missing])
            for k in missing:
                if f"{self.signature}:{k}" in found:
                    self._memo[k] = found[f"{self.signature}:{k}"]
        for k in missing:
            if k not in self._memo:
                self._memo[k] = self._new[k] = resolve(k)

    def manifest(self, imports: Iterable[str]) -> EnvManifest:
        names = sorted(set(imports))
        self._lookup(names)
        packages = {}
        for name in names:
            found = self._memo.get(name)
            packages[found[0] if found else name] = found[1] if found else "unknown"
        return EnvManifest(python=platform.python_version(), packages=packages)

    def flush(self) -> None:
        if self._store is not None and self._new:
            self._store.put_many({f"{self.signature}:{k}": v for k, v in self._new.items()})
            self._new.clear()


def env_digest(manifest: EnvManifest) -> str:
    return digest_bytes(canonical_bytes(manifest))
