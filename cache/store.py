"""The local store: a CAS and its LMDB index under one cache directory."""

from __future__ import annotations

import os
from pathlib import Path

import lmdb

from mlbuild.cache.cas import CAS
from mlbuild.cache.errors import is_read_only, store_error
from mlbuild.cache.index import Index
from mlbuild.cache.location import default_cache_dir
from mlbuild.cache.stat_cache import StatCache


def open_store(configured: str | None = None, flag: str | os.PathLike[str] | None = None) -> LocalStore:
    """The one way a command opens the local store (see ``default_cache_dir`` for which)."""
    return LocalStore(default_cache_dir(configured, flag))


class LocalStore:
    """Blobs (``cas/``) and their index (``index/``) under ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        try:
            self.cas = CAS(self.root / "cas")
            self.index = Index(self.root / "index")
        except (OSError, lmdb.Error) as exc:
            if not (is_read_only(exc) and (self.root / "index" / "data.mdb").is_file()):
                raise store_error(exc, self.root) from None
            # A cache on a read-only medium (or without write permission): still serves hits.
            try:
                self.cas = CAS(self.root / "cas", create=False)
                self.index = Index(self.root / "index", readonly=True)
            except (OSError, lmdb.Error) as again:
                raise store_error(again, self.root) from None
        self.stat_cache = StatCache(self.index)

    def close(self) -> None:
        self.index.close()
