"""ensure_intact (cache/intact.py), the one check that outputs' blobs are here and intact; and
copy_hashing (cache/digest.py), the one copy that hashes the bytes on their way."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlbuild.cache.digest import copy_hashing, digest_bytes, digest_file
from mlbuild.cache.intact import ensure_intact
from mlbuild.cache.records import ArtifactRef
from mlbuild.cache.store import LocalStore
from mlbuild.cache.trees import put_tree, read_tree


class OtherStore:
    """A blob source backed by a second local store: copies what is asked for, unchecked."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.asked: list[str] = []

    def ensure_local(self, refs: list[ArtifactRef]) -> bool:
        self.asked += [r.digest for r in refs]
        return all(self.have(r.digest) for r in refs)

    def have(self, digest: str) -> bool:
        return self.store.cas.has(digest)


def outputs(store: LocalStore, tmp: Path) -> list[ArtifactRef]:
    (tmp / "out").mkdir()
    (tmp / "out" / "a.txt").write_bytes(b"alpha")
    (tmp / "out" / "b.txt").write_bytes(b"beta")
    tree, size = put_tree(store.cas, tmp / "out")
    value = store.cas.put_bytes(b"\x93value")
    return [ArtifactRef("files", tree, "tree", size), ArtifactRef("value", value, "msgpack", 6)]


def corrupt(store: LocalStore, digest: str) -> None:
    path = store.cas.path(digest)
    path.chmod(0o644)
    path.write_bytes(b"garbage")


def test_intact_missing_and_corrupt(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "cache")
    refs = outputs(store, tmp_path)
    assert ensure_intact(store, refs) == []
    files = read_tree(store.cas, refs[0].digest)
    store.cas.delete(files[0].digest)
    corrupt(store, refs[1].digest)
    # Without verify only presence counts; with it, the corrupt blob is found (and evicted).
    assert ensure_intact(store, refs, verify=False) == [files[0].digest]
    assert ensure_intact(store, refs) == [files[0].digest, refs[1].digest]
    assert not store.cas.has(refs[1].digest)


def test_a_corrupt_tree_blob_is_reported_not_raised(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "cache")
    refs = outputs(store, tmp_path)
    corrupt(store, refs[0].digest)
    assert ensure_intact(store, refs, verify=False) == [refs[0].digest]


def test_missing_blobs_come_from_the_remote_tree_first(tmp_path: Path) -> None:
    there = LocalStore(tmp_path / "there")
    refs = outputs(there, tmp_path)
    here = LocalStore(tmp_path / "here")

    class Copying(OtherStore):
        def ensure_local(self, refs: list[ArtifactRef]) -> bool:
            for r in refs:
                if self.have(r.digest):
                    here.cas.put_bytes(self.store.cas.get_bytes(r.digest))
            return super().ensure_local(refs)

    remote = Copying(there)
    assert ensure_intact(here, refs, remote) == []
    assert remote.asked[0] == refs[0].digest  # the tree, to learn its files
    assert set(remote.asked) == {refs[0].digest, refs[1].digest, *(e.digest for e in read_tree(there.cas, refs[0].digest))}
    there.cas.delete(refs[1].digest)
    here.cas.delete(refs[1].digest)
    assert ensure_intact(here, refs, remote) == [refs[1].digest]


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=5000), st.integers(1, 2048))
def test_copy_hashing_copies_and_hashes_in_one_pass(tmp_path_factory: pytest.TempPathFactory, data: bytes, chunk: int) -> None:
    tmp = tmp_path_factory.mktemp("copy")
    (tmp / "src").write_bytes(data)
    assert copy_hashing(tmp / "src", tmp / "dest", chunk) == (digest_bytes(data), len(data))
    assert (tmp / "dest").read_bytes() == data
    assert digest_file(tmp / "src") == (digest_bytes(data), len(data))
