"""Directory artifacts: a tree blob lists (path, digest, size, executable) of every file."""

from __future__ import annotations

import os
import stat as stat_mod
from pathlib import Path

import msgspec

from mlbuild.cache.cas import CAS
from mlbuild.cache.records import TreeEntry

_tree_enc = msgspec.msgpack.Encoder()
_tree_dec = msgspec.msgpack.Decoder(list[TreeEntry])


class UnsupportedFile(ValueError):
    """A tree holds something other than regular files and folders (a symlink, a fifo)."""


def put_tree(cas: CAS, directory: str | os.PathLike[str]) -> tuple[str, int]:
    """Store every regular file under ``directory``; returns the tree's digest and total size.

    Anything else under it (a symbolic link, a fifo, a socket) raises UnsupportedFile: a tree
    is regular files only, and a link would be dropped without a word or, followed, could store
    a file from anywhere on the machine. The message says to write the file itself.
    """
    entries: list[TreeEntry] = []
    total = 0
    base = os.fspath(directory)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in [*dirnames, *filenames]:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if stat_mod.S_ISREG(st.st_mode) or stat_mod.S_ISDIR(st.st_mode):
                continue
            rel = Path(os.path.relpath(full, base)).as_posix()
            what = f"a symbolic link (to {os.readlink(full)})" if stat_mod.S_ISLNK(st.st_mode) else "not a regular file"
            raise UnsupportedFile(f"out/{rel} is {what}; outputs hold regular files only: write or copy the file itself")
        for name in filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            digest, size = cas.put_file(full)
            total += size
            entries.append(TreeEntry(Path(os.path.relpath(full, base)).as_posix(), digest, size, bool(st.st_mode & 0o111)))
    entries.sort(key=lambda e: e.path)
    return cas.put_bytes(_tree_enc.encode(entries)), total


def read_tree(cas: CAS, digest: str) -> list[TreeEntry]:
    return _tree_dec.decode(cas.get_bytes(digest))


def materialize_tree(cas: CAS, digest: str, dest: str | os.PathLike[str]) -> None:
    """Write the tree's files under ``dest`` as verified copies (never links into the CAS)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for entry in read_tree(cas, digest):
        target = dest / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_verified(cas, entry.digest, target, entry.executable)


def copy_verified(cas: CAS, digest: str, target: Path, executable: bool = False) -> None:
    """Copy a blob to ``target`` atomically, checking its digest on the way."""
    from mlbuild.cache.cas import CorruptBlob, MissingBlob
    from mlbuild.cache.digest import copy_hashing

    src = cas.path(digest)
    tmp = target.with_name(target.name + ".mlbuild-tmp")
    try:
        actual, _ = copy_hashing(src, tmp)
    except FileNotFoundError:
        tmp.unlink(missing_ok=True)
        raise MissingBlob(digest) from None
    if actual != digest:
        tmp.unlink(missing_ok=True)
        src.unlink(missing_ok=True)
        raise CorruptBlob(digest, src)
    os.chmod(tmp, 0o755 if executable else 0o644)
    os.replace(tmp, target)
