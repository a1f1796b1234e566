"""The fsspec remote cache through the CLI, on small workspaces written here, and its parts.

Two workspaces (copies of one folder, each with its own MLBUILD_CACHE_DIR) share one remote
on ``file://`` (the S3 variants are in test_remote_s3.py, the ResNet example in
test_remote_example.py).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlbuild.cache.digest import digest_bytes
from mlbuild.engine.interfaces import InvalidEntry
from mlbuild.remote.fsspec_cache import FsspecRemoteCache
from mlbuild.remote.signing import BadSignature, open_envelope, seal

from support.remote_race import race_two_writers, result_for
from support.remote_ws import build, mlbuild, remote_files, write_workspace


@pytest.fixture
def two_workspaces(tmp_path: Path) -> tuple[Path, Path]:
    first = write_workspace(tmp_path / "first")
    second = tmp_path / "second"
    shutil.copytree(first, second)
    return first, second


@pytest.fixture
def remote_url(tmp_path: Path) -> str:
    return f"file://{tmp_path / 'team-cache'}"


# -------------------------------------------------------------------- two workspaces, one remote


def test_second_workspace_executes_nothing_and_downloads_only_the_model(
        two_workspaces: tuple[Path, Path], remote_url: str) -> None:
    first, second = two_workspaces
    one, _ = build(first, "//pipe:model", "--remote-cache", remote_url)
    assert one["actions"]["executed"] == 3
    assert one["remote"]["entries_up"] == 3
    assert one["remote"]["bytes_up"] >= 4 * 50_000

    two, _ = build(second, "//pipe:model", "--remote-cache", remote_url)
    assert two["actions"]["executed"] == 0
    assert two["remote_hits"] == 3 == two["actions"]["remote_hits"]
    assert two["outputs"] == one["outputs"]
    # Build without the bytes: only the model's value came down, not the 200 kB of features.
    model_file = second / "mlbuild-out" / "pipe" / "model.value.msgpack"
    assert two["remote"]["blobs_down"] == 1
    assert two["remote"]["bytes_down"] == model_file.stat().st_size
    assert digest_bytes(model_file.read_bytes()) == two["outputs"]["//pipe:model"]["value"]

    stats = json.loads(mlbuild(second, "cache", "stats", "--json").stdout)
    assert (stats["hits"], stats["misses"], stats["bytes_down"]) == (3, 0, model_file.stat().st_size)


def test_noop_build_never_contacts_the_remote(two_workspaces: tuple[Path, Path]) -> None:
    first, _ = two_workspaces
    build(first, "//pipe:model")
    # Nothing answers on port 1: any contact would fail and mark the remote unavailable.
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    again, err = build(first, "//pipe:model", "--remote-cache", "s3://nobody/cache", env=env)
    assert again["actions"]["cached"] == 3
    assert again["remote"]["state"] == "unused"
    assert again["remote"]["calls"] == 0
    assert "not contacted" in err


def test_corrupt_blob_on_the_remote_is_a_miss_and_the_step_rebuilds(
        two_workspaces: tuple[Path, Path], remote_url: str) -> None:
    first, second = two_workspaces
    one, _ = build(first, "//pipe:model", "--remote-cache", remote_url)
    digest = one["outputs"]["//pipe:model"]["value"]
    [blob] = [p for p in remote_files(remote_url, "cas") if p.name == digest]
    blob.chmod(0o644)
    blob.write_bytes(b"not the model")

    two, err = build(second, "//pipe:model", "--remote-cache", remote_url)
    assert f"blob {digest} is corrupt" in err
    assert two["actions"]["executed"] == 1  # the model step; its upstreams stay remote hits
    assert two["remote"]["corrupt"] == 1
    assert two["outputs"] == one["outputs"]
    # The rebuilt step was published again, over the corrupt blob.
    assert digest_bytes(blob.read_bytes()) == digest
    local = second.parent / "second-cache" / "cas" / digest[:2] / digest
    assert digest_bytes(local.read_bytes()) == digest  # the corrupt bytes never reached the local CAS


def test_entries_signed_with_another_key_are_rejected(
        two_workspaces: tuple[Path, Path], remote_url: str) -> None:
    first, second = two_workspaces
    build(first, "//pipe:model", "--remote-cache", remote_url, env={"MLBUILD_CACHE_KEY": "team-key"})

    other, err = build(second, "//pipe:model", "--remote-cache", remote_url, "--remote-upload", "false",
                       env={"MLBUILD_CACHE_KEY": "another-key"})
    assert other["actions"]["executed"] == 3
    assert other["remote"]["rejected"] == 3 and other["remote"]["hits"] == 0
    assert "signature does not match" in err


def test_unsigned_entries_are_rejected_by_a_reader_with_a_key(
        two_workspaces: tuple[Path, Path], remote_url: str) -> None:
    first, second = two_workspaces
    build(first, "//pipe:model", "--remote-cache", remote_url)
    keyed, err = build(second, "//pipe:model", "--remote-cache", remote_url, "--remote-upload", "false",
                       env={"MLBUILD_CACHE_KEY": "team-key"})
    assert keyed["actions"]["executed"] == 3
    assert "not signed" in err


def test_the_same_key_reads_signed_entries(two_workspaces: tuple[Path, Path], remote_url: str) -> None:
    first, second = two_workspaces
    build(first, "//pipe:model", "--remote-cache", remote_url, env={"MLBUILD_CACHE_KEY": "team-key"})
    same, _ = build(second, "//pipe:model", "--remote-cache", remote_url, env={"MLBUILD_CACHE_KEY": "team-key"})
    assert same["actions"]["executed"] == 0


def test_read_only_client_publishes_nothing(two_workspaces: tuple[Path, Path], remote_url: str) -> None:
    first, second = two_workspaces
    build(first, "//pipe:model", "--remote-cache", remote_url)
    before = remote_files(remote_url, "ac") + remote_files(remote_url, "cas")
    changed, _ = build(second, "//pipe:model", "--remote-cache", remote_url, "--remote-upload", "false",
                       "--set", "//pipe:source.n=6")
    assert changed["actions"]["executed"] == 3
    assert changed["remote"]["bytes_up"] == 0 and changed["remote"]["entries_up"] == 0
    assert remote_files(remote_url, "ac") + remote_files(remote_url, "cas") == before
    refused = mlbuild(second, "cache", "push", "//pipe:model", "--remote-cache", remote_url,
                      "--remote-upload", "false", check=False)
    assert refused.returncode != 0 and "read-only" in refused.stderr and "Traceback" not in refused.stderr


def test_pickled_results_are_never_uploaded(two_workspaces: tuple[Path, Path], remote_url: str) -> None:
    first, second = two_workspaces
    one, _ = build(first, "//pipe:odd", "--remote-cache", remote_url)
    assert one["actions"]["executed"] == 2
    assert len(remote_files(remote_url, "ac")) == 1  # :source only
    two, _ = build(second, "//pipe:odd", "--remote-cache", remote_url)
    assert (two["remote_hits"], two["actions"]["executed"]) == (1, 1)


def test_failing_upload_leaves_no_entry_and_the_build_succeeds(
        two_workspaces: tuple[Path, Path], remote_url: str) -> None:
    first, _ = two_workspaces
    root = Path(remote_url.removeprefix("file://"))
    root.mkdir()
    (root / "cas").write_text("a file where the blob folder should be")  # every blob upload fails
    one, err = build(first, "//pipe:model", "--remote-cache", remote_url)
    assert one["status"] == "succeeded" and one["actions"]["executed"] == 3
    assert one["remote"]["state"] == "unavailable"
    assert "UNAVAILABLE" in err
    assert remote_files(remote_url, "ac") == []


def test_push_then_fetch_and_pull(two_workspaces: tuple[Path, Path], remote_url: str) -> None:
    first, second = two_workspaces
    build(first, "//pipe:model")  # no remote: nothing published
    pushed = mlbuild(first, "cache", "push", "//pipe:model", "--remote-cache", remote_url)
    assert "pushed 3 results" in pushed.stdout
    assert len(remote_files(remote_url, "ac")) == 3

    fetched = mlbuild(second, "fetch", "//pipe:features", "--remote-cache", remote_url)
    files = second / "mlbuild-out" / "pipe" / "features"
    assert str(files) in fetched.stdout
    assert sorted(p.name for p in files.iterdir()) == [f"part-{i}.bin" for i in range(4)]

    pulled = mlbuild(second, "cache", "pull", "//pipe:model", "--remote-cache", remote_url)
    assert "pulled 2 blobs" in pulled.stdout  # :source's and :model's values; the features are here

    missing = mlbuild(second, "fetch", "//pipe:odd", "--remote-cache", remote_url, check=False)
    assert missing.returncode != 0
    assert "//pipe:odd is in neither the local nor the remote cache" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_fetch_without_a_remote_is_a_clear_error(two_workspaces: tuple[Path, Path]) -> None:
    first, _ = two_workspaces
    proc = mlbuild(first, "fetch", "//pipe:model", check=False)
    assert proc.returncode == 2 and "no remote cache configured" in proc.stderr


# -------------------------------------------------------------------- the parts


@given(entry=st.binary(max_size=512), key=st.binary(min_size=1, max_size=64), other=st.binary(min_size=1, max_size=64))
def test_signatures_accept_their_key_only(entry: bytes, key: bytes, other: bytes) -> None:
    signed = seal(entry, key)
    assert open_envelope(signed, key) == entry
    assert open_envelope(signed, None) == entry  # a reader without a key trusts what it gets
    if other != key:
        with pytest.raises(BadSignature):
            open_envelope(signed, other)
    with pytest.raises(BadSignature):
        open_envelope(seal(entry, None), key)


def test_garbage_entry_is_refused(tmp_path: Path) -> None:
    cache = FsspecRemoteCache(f"file://{tmp_path}")
    Path(cache.action_path("k" * 32)).parent.mkdir(parents=True)
    Path(cache.action_path("k" * 32)).write_bytes(b"\x00garbage")
    with pytest.raises(InvalidEntry):
        cache.get_action("k" * 32)


@pytest.mark.parametrize("scheme", ["file", "memory"])
def test_blob_and_entry_round_trip(tmp_path: Path, scheme: str) -> None:
    url = f"file://{tmp_path / 'remote'}" if scheme == "file" else f"memory://roundtrip-{tmp_path.name}"
    cache = FsspecRemoteCache(url)
    src = tmp_path / "blob"
    src.write_bytes(os.urandom(10 * 1024 * 1024))  # larger than SMALL_BLOB: streams
    digest = digest_bytes(src.read_bytes())
    assert not cache.has_blob(digest)
    cache.push_blob(digest, str(src))
    assert cache.has_blob(digest)
    assert cache.fetch_blob(digest, str(tmp_path / "a")) == digest
    assert cache.fetch_blob(digest, str(tmp_path / "b"), size_hint=src.stat().st_size) == digest
    assert cache.get_action("0" * 32) is None
    cache.put_action(result_for("0" * 32, "here"))
    assert cache.get_action("0" * 32) == result_for("0" * 32, "here")


def test_an_entry_stored_under_another_key_is_refused(tmp_path: Path) -> None:
    cache = FsspecRemoteCache(f"file://{tmp_path}")
    cache.put_action(result_for("1" * 32, "here"))
    Path(cache.action_path("1" * 32)).rename(cache.action_path("2" * 32))
    with pytest.raises(InvalidEntry, match="another action"):
        cache.get_action("2" * 32)


def test_concurrent_writers_of_one_entry_leave_one_valid_entry(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'remote'}"
    key = "3" * 32
    race_two_writers(lambda: FsspecRemoteCache(url, signing_key=b"team"), key, 200)
    assert list((tmp_path / "remote" / "tmp").iterdir()) == []  # no half-written leftovers
