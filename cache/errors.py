"""The store's failure modes, each mapped to one line: what happened, and what to do.

| failure | seen as | message says |
| --- | --- | --- |
| the cache path is a file | ``FileExistsError``/``NotADirectoryError`` opening it | point ``MLBUILD_CACHE_DIR``/``[cache] dir`` at a folder |
| ``index/``, ``cas/`` or ``tmp/`` is a file | the same, one level down | remove or rename that file |
| damaged index | ``lmdb.CorruptedError`` (MDB_CORRUPTED), ``BadDbiError`` (MDB_BAD_DBI), ``InvalidError`` (not an LMDB file), ``PageNotFoundError``, ``VersionMismatchError`` | ``mlbuild cache fsck --repair`` |
| read-only cache | ``EACCES``/``EROFS``/``lmdb.ReadonlyError`` | it is opened read-only: hits are served, nothing is recorded (a warning) |
| disk full | ``ENOSPC``, ``EDQUOT``, ``lmdb.DiskError`` | free space (``mlbuild cache gc --max-size``) |
| address-space limit | ``lmdb.MemoryError``/``ENOMEM`` mapping the index | raise ``ulimit -v``; the index maps only its own size (it starts small and grows) |
| index full | ``lmdb.MapFullError`` that growing cannot fix | free space / raise the limit |

``describe`` maps an exception to the line; ``StoreError`` carries it to the command line,
which prints it alone (exit status 2: something the user must fix outside the build).
"""

from __future__ import annotations

import errno
import os

import lmdb

__all__ = ["StoreError", "describe", "is_damaged_index", "is_read_only", "store_error"]


class StoreError(Exception):
    """The local store cannot be used as it is; the message says why and what to do.
    ``damaged``: the index itself is damaged (``mlbuild cache fsck --repair`` starts a new one)."""

    exit_code = 2

    def __init__(self, message: str, *, damaged: bool = False) -> None:
        super().__init__(message)
        self.damaged = damaged


def store_error(exc: BaseException, root: str | os.PathLike[str]) -> StoreError:
    """``exc`` (an OSError or lmdb.Error of the store under ``root``) as a StoreError."""
    return StoreError(describe(exc, root), damaged=is_damaged_index(exc))


_DAMAGED = (lmdb.CorruptedError, lmdb.BadDbiError, lmdb.InvalidError, lmdb.PageNotFoundError,
            lmdb.VersionMismatchError, lmdb.BadRslotError, lmdb.IncompatibleError, lmdb.PanicError)
_FULL = (errno.ENOSPC, errno.EDQUOT)
_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)


def is_damaged_index(exc: BaseException) -> bool:
    return isinstance(exc, _DAMAGED)


def is_read_only(exc: BaseException) -> bool:
    if isinstance(exc, lmdb.ReadonlyError):
        return True
    code = getattr(exc, "errno", None)
    if isinstance(exc, lmdb.Error) and code is None:
        # py-lmdb keeps the errno in the message ("...: Permission denied")
        text = str(exc)
        return any(os.strerror(c) in text for c in _READ_ONLY)
    return code in _READ_ONLY


def _is_full(exc: BaseException) -> bool:
    if isinstance(exc, lmdb.DiskError):
        return True
    if getattr(exc, "errno", None) in _FULL:
        return True
    return isinstance(exc, lmdb.Error) and any(os.strerror(c) in str(exc) for c in _FULL)


def describe(exc: BaseException, root: str | os.PathLike[str]) -> str:
    """One line for a failure of the store under ``root``: what happened, what to do."""
    root = os.fspath(root)
    where = os.fspath(getattr(exc, "filename", None) or root)
    if is_damaged_index(exc):
        return (f"the cache index in {root}/index is damaged ({type(exc).__name__}: {_first_line(exc)}); "
                "run `mlbuild cache fsck --repair` to start a new index (the blobs in cas/ are kept)")
    if isinstance(exc, lmdb.MemoryError) or getattr(exc, "errno", None) == errno.ENOMEM:
        return (f"cannot map the cache index in {root}/index: not enough address space "
                "(is `ulimit -v` low?); raise the limit or use a smaller cache")
    if isinstance(exc, lmdb.MapFullError):
        return f"the cache index in {root}/index is full and cannot grow; free space or raise `ulimit -v`"
    if _is_full(exc):
        return (f"the disk holding the cache ({root}) is full; free space, e.g. "
                "`mlbuild cache gc --max-size 10G`, and build again (the cache is intact)")
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return (f"{where} is a file where the cache needs a folder; remove or rename it, or point "
                "MLBUILD_CACHE_DIR / [cache] dir in mlbuild.toml at a folder")
    if is_read_only(exc):
        return (f"the cache in {root} is not writable ({_first_line(exc)}); fix its permissions, or point "
                "MLBUILD_CACHE_DIR / [cache] dir at a writable folder")
    if isinstance(exc, OSError):
        return f"cannot use the cache in {root}: {exc.strerror or exc} ({where})"
    return f"cannot use the cache in {root}: {type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
