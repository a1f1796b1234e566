"""The fast transfer paths of the remote cache: small blobs verified in memory before they are
written, one-pass large copies, and uploads into a fresh file:// remote from many threads."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlbuild.cache.cas import CAS
from mlbuild.cache.digest import digest_bytes
from mlbuild.cache.records import ArtifactRef
from mlbuild.cache.store import LocalStore
from mlbuild.engine.run.remote_session import RemoteSession
from mlbuild.remote.fsspec_cache import COPY_CHUNK, FsspecRemoteCache


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=4096), other=st.binary(min_size=1, max_size=64))
def test_put_verified_writes_only_matching_bytes(tmp_path_factory: pytest.TempPathFactory,
                                                 data: bytes, other: bytes) -> None:
    cas = CAS(tmp_path_factory.mktemp("cas") / "cas")
    wrong = data + other
    assert cas.put_verified(digest_bytes(data), wrong) == digest_bytes(wrong)
    assert not cas.has(digest_bytes(data)) and cas.digests() == []
    assert os.listdir(cas.tmp) == []
    assert cas.put_verified(digest_bytes(data), data) == digest_bytes(data)
    assert cas.get_bytes(digest_bytes(data)) == data
    assert oct(os.stat(cas.path(digest_bytes(data))).st_mode & 0o222) == "0o0"  # read-only


def test_read_blob_refuses_blobs_over_the_limit(tmp_path: Path) -> None:
    cache = FsspecRemoteCache(f"file://{tmp_path / 'remote'}")
    src = tmp_path / "blob"
    src.write_bytes(b"x" * 100)
    digest = digest_bytes(src.read_bytes())
    cache.push_blob(digest, str(src))
    assert cache.read_blob(digest, 100) == b"x" * 100
    assert cache.read_blob(digest, 99) is None
    with pytest.raises(FileNotFoundError):
        cache.read_blob("0" * 32, 100)


def test_large_fetch_hashes_what_it_writes(tmp_path: Path) -> None:
    cache = FsspecRemoteCache(f"file://{tmp_path / 'remote'}")
    src = tmp_path / "big"
    src.write_bytes(os.urandom(3 * COPY_CHUNK + 17))
    digest = digest_bytes(src.read_bytes())
    cache.push_blob(digest, str(src))
    assert cache.fetch_blob(digest, str(tmp_path / "back"), src.stat().st_size) == digest
    assert (tmp_path / "back").read_bytes() == src.read_bytes()
    # a blob altered on the remote comes back with the digest of its new bytes
    stored = Path(cache.blob_path(digest))
    stored.chmod(0o644)
    stored.write_bytes(b"y" + src.read_bytes()[1:])
    assert cache.fetch_blob(digest, str(tmp_path / "again"), src.stat().st_size) != digest


def test_many_threads_push_into_a_fresh_remote_then_pull(tmp_path: Path) -> None:
    """Every thread may be the first to need tmp/ or a shard folder; none may fail for it."""
    src = LocalStore(tmp_path / "src")
    blobs = [os.urandom(512) for _ in range(300)]
    refs = [ArtifactRef(f"b{i}", src.cas.put_bytes(b), "msgpack", len(b)) for i, b in enumerate(blobs)]
    for attempt in range(3):
        cache = FsspecRemoteCache(f"file://{tmp_path / f'remote-{attempt}'}")
        def push(ref: ArtifactRef, cache: FsspecRemoteCache = cache) -> None:
            cache.push_blob(ref.digest, src.cas.path_str(ref.digest))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(push, refs))
        assert os.listdir(tmp_path / f"remote-{attempt}" / "tmp") == []
        fresh = LocalStore(tmp_path / f"fresh-{attempt}")
        session = RemoteSession(cache, fresh, timeout=30, jobs=8)
        assert session.ensure_local(refs)
        session.close()
        assert session.stats.blobs_down == len(refs) and session.stats.corrupt == 0
        assert [fresh.cas.get_bytes(r.digest) for r in refs] == blobs
