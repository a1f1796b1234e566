"""Making sure the blobs of some outputs are here, and intact, before anything reads them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from mlbuild.cache.cas import CorruptBlob, MissingBlob
from mlbuild.cache.records import ArtifactRef
from mlbuild.cache.store import LocalStore
from mlbuild.cache.trees import read_tree

__all__ = ["BlobSource", "ensure_intact"]


class BlobSource(Protocol):
    """Where missing blobs can come from (the remote session, ``engine/run/remote_session.py``)."""

    def ensure_local(self, refs: list[ArtifactRef]) -> bool:
        """Download the blobs of ``refs`` missing from the local CAS, each checked against its digest."""
        ...


def ensure_intact(
    store: LocalStore, refs: Iterable[ArtifactRef], remote: BlobSource | None = None, *, verify: bool = True
) -> list[str]:
    """The digests among ``refs`` and their trees' files that are missing or corrupt here;
    an empty list when every blob is in the local CAS (and, with ``verify``, intact).

    A blob missing here is fetched from ``remote`` first (a tree blob before its files, which
    it lists). With ``verify`` every blob is re-hashed and a corrupt one is removed on the way
    (the CAS does that), so a later write of the right bytes can take its place; a caller that
    reads every blob with a digest check anyway (a verified copy) passes ``verify=False``.
    """
    cas = store.cas
    bad: list[str] = []
    needed: list[ArtifactRef] = []
    for ref in refs:
        needed.append(ref)
        if ref.codec == "tree":
            try:
                if remote is not None and not cas.has(ref.digest):
                    remote.ensure_local([ref])
                needed.extend(ArtifactRef(e.path, e.digest, "msgpack", e.size) for e in read_tree(cas, ref.digest))
            except (CorruptBlob, MissingBlob):
                bad.append(ref.digest)
    missing = [r for r in needed if r.digest not in bad and not cas.has(r.digest)]
    if missing and remote is not None:
        remote.ensure_local(missing)
    for ref in needed:
        if ref.digest in bad:
            continue
        if not verify:
            if not cas.has(ref.digest):
                bad.append(ref.digest)
            continue
        try:
            cas.verified_path(ref.digest)
        except (CorruptBlob, MissingBlob):
            bad.append(ref.digest)
    return bad
