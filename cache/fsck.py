"""``mlbuild cache fsck``: check the index against the CAS (and, ``deep``, the CAS against its
digests); with ``repair``, drop what cannot be trusted and rebuild the lineage indexes.

What it checks, and what ``repair`` does about each:

- the index opens and reads (else it is *damaged*: moved aside to ``index.damaged-<time>/`` and
  a new, empty one started; the blobs stay, so steps that run again find their inputs);
- every action entry decodes and every blob its outputs need (tree members included) is in the
  CAS (else the entry is dropped: the next build runs that step again);
- ``deep``: every blob's bytes hash to its name (a corrupt blob is removed at once: nothing may
  read it);
- the lineage indexes (producers, consumers) are rebuilt from the entries that remain;
- temporary files left in ``tmp/`` by killed processes are counted (``cache gc`` removes them).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import lmdb
import msgspec

from mlbuild.cache.cas import CAS, CorruptBlob, MissingBlob
from mlbuild.cache.errors import StoreError, is_damaged_index
from mlbuild.cache.index import Index
from mlbuild.cache.records import ArtifactRef
from mlbuild.cache.trees import read_tree

__all__ = ["FsckReport", "fsck"]


class FsckReport(msgspec.Struct):
    index_damaged: bool = False
    index_replaced: str | None = None  # where the damaged index was moved
    entries: int = 0
    entries_broken: list[str] = []  # "label (key): why"
    entries_dropped: int = 0
    blobs: int = 0
    blobs_corrupt: list[str] = []
    temp_files: int = 0

    @property
    def clean(self) -> bool:
        return not (self.index_damaged or self.entries_broken or self.blobs_corrupt)


def fsck(root: str | os.PathLike[str], *, repair: bool = False, deep: bool = False) -> FsckReport:
    root = Path(root)
    report = FsckReport()
    cas = CAS(root / "cas")
    index = _open_index(root, report, repair)
    if index is None:
        return report
    try:
        if deep:
            for digest in cas.digests():
                report.blobs += 1
                try:
                    cas.verified_path(digest)  # a corrupt blob is removed here
                except CorruptBlob:
                    report.blobs_corrupt.append(digest)
                except MissingBlob:
                    pass
        else:
            report.blobs = len(cas.digests())
        broken: list[str] = []
        for result in index.iter_actions():
            report.entries += 1
            why = _missing(cas, result.outputs)
            if why:
                report.entries_broken.append(f"{result.label} ({result.key[:12]}): {why}")
                broken.append(result.key)
        if repair:
            for key in broken:
                index.delete_action(key)
            report.entries_dropped = len(broken) + (index.rebuild_lineage() or 0)
        report.temp_files = _count(root / "tmp")
    except (lmdb.Error, StoreError) as exc:
        if not (isinstance(exc, StoreError) and exc.damaged) and not is_damaged_index(exc):
            raise
        index.close()
        report.index_damaged = True
        if repair:
            report.index_replaced = _replace_index(root)
        return report
    finally:
        if not index._closed:
            index.close()
    return report


def _open_index(root: Path, report: FsckReport, repair: bool) -> Index | None:
    try:
        return Index(root / "index")
    except lmdb.Error as exc:
        if not is_damaged_index(exc):
            raise
    report.index_damaged = True
    if not repair:
        return None
    report.index_replaced = _replace_index(root)
    return Index(root / "index")


def _replace_index(root: Path) -> str:
    aside = root / f"index.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    os.rename(root / "index", aside)
    return str(aside)


def _missing(cas: CAS, outputs: list[ArtifactRef]) -> str:
    for ref in outputs:
        if not cas.has(ref.digest):
            return f"blob {ref.digest} ({ref.name}) is missing"
        if ref.codec == "tree":
            try:
                entries = read_tree(cas, ref.digest)
            except (CorruptBlob, MissingBlob, msgspec.DecodeError):
                return f"its file list {ref.digest} is unreadable"
            for e in entries:
                if not cas.has(e.digest):
                    return f"blob {e.digest} ({ref.name}/{e.path}) is missing"
    return ""


def _count(folder: Path) -> int:
    try:
        return sum(1 for _ in folder.iterdir())
    except OSError:
        return 0
