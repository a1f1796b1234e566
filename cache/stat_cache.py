"""Content digests of source files, re-read only when (size, mtime, inode) changed."""

from __future__ import annotations

import os
import stat as stat_mod
import time
from pathlib import Path

from mlbuild.cache.digest import digest_file, digest_value
from mlbuild.cache.index import Index
from mlbuild.cache.memo import Memo
from mlbuild.cache.records import FileStat

# A file modified this recently could change again within the same mtime tick without its
# stat changing ("racy git"); such files are hashed but their digest is not remembered.
RACY_SECONDS = 2.0


class StatCache:
    """Maps a path to its content digest, trusting an unchanged stat."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self._memo: Memo[FileStat] = Memo(index, "stat", FileStat)
        self._pending: dict[str, FileStat] = {}

    def digest(self, path: str | os.PathLike[str]) -> str:
        """Digest of a file, or of a directory as the tree of its files."""
        p = os.path.abspath(path)
        st = os.stat(p)
        if stat_mod.S_ISDIR(st.st_mode):
            return self._tree_digest(Path(p))
        memo = self._memo.get(p)
        if memo is not None and (memo.size, memo.mtime_ns, memo.ino) == (st.st_size, st.st_mtime_ns, st.st_ino):
            return memo.digest
        digest, _ = digest_file(p)
        if time.time() - st.st_mtime_ns / 1e9 > RACY_SECONDS:
            self._pending[p] = FileStat(st.st_size, st.st_mtime_ns, st.st_ino, digest)
        return digest

    def _tree_digest(self, root: Path) -> str:
        """Every file (following symlinked folders, as a step reading the tree does) and every
        folder, empty ones included: a listing is part of what a step can see."""
        entries = []
        seen: set[tuple[int, int]] = set()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            st = os.stat(dirpath)
            if (st.st_dev, st.st_ino) in seen:  # a symlink cycle
                dirnames.clear()
                continue
            seen.add((st.st_dev, st.st_ino))
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            if rel_dir != "." and not filenames and not dirnames:
                entries.append([rel_dir + "/", ""])
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                entries.append([os.path.relpath(full, root), self.digest(full)])
        return digest_value(sorted(entries))

    def flush(self) -> None:
        """Remember the digests computed since the last flush (one LMDB transaction)."""
        self._memo.put_many(self._pending)
        self._pending.clear()
