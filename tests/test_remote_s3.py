"""The remote cache on S3: a moto server on loopback, reached through s3fs as a user would
(``s3://bucket/prefix`` plus the standard ``AWS_*`` variables, ``AWS_ENDPOINT_URL`` included)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlbuild.cache.digest import digest_bytes
from mlbuild.remote.fsspec_cache import FsspecRemoteCache

from support.remote_race import race_two_writers
from support.remote_ws import build, write_workspace


@pytest.fixture
def two_workspaces(tmp_path: Path) -> tuple[Path, Path]:
    first = write_workspace(tmp_path / "first")
    second = tmp_path / "second"
    shutil.copytree(first, second)
    return first, second


def test_two_workspaces_share_an_s3_remote(two_workspaces: tuple[Path, Path], s3_bucket: Any) -> None:
    first, second = two_workspaces
    url = s3_bucket.url("team/cache")
    one, _ = build(first, "//pipe:model", "--remote-cache", url, env=s3_bucket.env)
    assert one["actions"]["executed"] == 3 and one["remote"]["entries_up"] == 3
    keys = [o["Key"] for o in s3_bucket.client().list_objects_v2(Bucket=s3_bucket.bucket)["Contents"]]
    assert sum(k.startswith("team/cache/ac/") for k in keys) == 3

    two, _ = build(second, "//pipe:model", "--remote-cache", url, env=s3_bucket.env)
    assert two["actions"]["executed"] == 0 and two["remote_hits"] == 3
    assert two["outputs"] == one["outputs"]
    assert two["remote"]["blobs_down"] == 1  # the model's value only


def test_corrupt_blob_on_s3_rebuilds_the_step(two_workspaces: tuple[Path, Path], s3_bucket: Any) -> None:
    first, second = two_workspaces
    url = s3_bucket.url("cache")
    one, _ = build(first, "//pipe:model", "--remote-cache", url, env=s3_bucket.env)
    digest = one["outputs"]["//pipe:model"]["value"]
    s3_bucket.client().put_object(Bucket=s3_bucket.bucket, Key=f"cache/cas/{digest[:2]}/{digest}", Body=b"junk")
    two, err = build(second, "//pipe:model", "--remote-cache", url, env=s3_bucket.env)
    assert f"blob {digest} is corrupt" in err
    assert two["actions"]["executed"] == 1 and two["outputs"] == one["outputs"]


def test_concurrent_writers_on_s3_leave_one_valid_entry(s3_bucket: Any) -> None:
    url = s3_bucket.url("race")
    key = "4" * 32
    race_two_writers(lambda: FsspecRemoteCache(url, storage_options=s3_bucket.storage_options, signing_key=b"ci"), key, 30)


def test_large_blob_streams_through_s3(tmp_path: Path, s3_bucket: Any) -> None:
    cache = FsspecRemoteCache(s3_bucket.url("big"), storage_options=s3_bucket.storage_options)
    src = tmp_path / "blob"
    src.write_bytes(os.urandom(40 * 1024 * 1024))  # several chunks, and a multipart upload
    digest = digest_bytes(src.read_bytes())
    cache.push_blob(digest, str(src))
    assert cache.has_blob(digest)
    assert cache.fetch_blob(digest, str(tmp_path / "back"), size_hint=src.stat().st_size) == digest
    assert (tmp_path / "back").read_bytes() == src.read_bytes()


def test_empty_and_small_blobs_read_back_from_s3(tmp_path: Path, s3_bucket: Any) -> None:
    """S3 answers a ranged read of an empty object with 416: an empty blob (an empty
    ``__init__.py`` in a step's input root) still reads back as no bytes."""
    cache = FsspecRemoteCache(s3_bucket.url("small"), storage_options=s3_bucket.storage_options)
    for data in (b"", b"x" * 100):
        src = tmp_path / "blob"
        src.write_bytes(data)
        cache.push_blob(digest_bytes(data), str(src))
        assert cache.read_blob(digest_bytes(data), 4096) == data
    assert cache.read_blob(digest_bytes(b"x" * 100), 50) is None  # larger than asked for
    with pytest.raises(FileNotFoundError):
        cache.read_blob(digest_bytes(b"never pushed"), 4096)


# -------------------------------------------------------------------- a server killed mid-build


@pytest.fixture
def own_s3_server(s3_server: Any, tmp_path: Path) -> Iterator[tuple[Any, subprocess.Popen[bytes]]]:
    """A moto server of this test's own (the shared one must survive), and its process."""
    exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (tmp_path / "moto.log").open("wb") as log:
        proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = type(s3_server)(endpoint_url=f"http://127.0.0.1:{port}", bucket="doomed")
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(server.endpoint_url + "/", timeout=2).close()
            break
        except urllib.error.HTTPError:
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.1)
    server.client().create_bucket(Bucket=server.bucket)
    try:
        yield server, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_server_killed_mid_build_the_build_finishes_locally(
        tmp_path: Path, own_s3_server: tuple[Any, subprocess.Popen[bytes]]) -> None:
    server, proc = own_s3_server
    ws = write_workspace(tmp_path / "ws")
    gate = tmp_path / "gate"
    env = {**os.environ, **server.env, "REMOTE_TEST_GATE": str(gate),
           "MLBUILD_CACHE_DIR": str(tmp_path / "ws-cache")}
    build_proc = subprocess.Popen(
        [sys.executable, "-m", "mlbuild", "build", "//pipe:after", "--json", "--remote-cache",
         server.url("c"), "--remote-timeout", "2"],
        cwd=ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # :source is published (the build is under way and the remote worked), :gated waits.
        fs = server.filesystem()
        deadline = time.monotonic() + 120
        while not fs.exists(f"{server.bucket}/c/ac") or not fs.ls(f"{server.bucket}/c/ac", refresh=True):
            assert build_proc.poll() is None, build_proc.communicate()
            assert time.monotonic() < deadline, "the first entry never reached the remote"
            time.sleep(0.1)
            fs.invalidate_cache()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        gate.touch()
        out, err = build_proc.communicate(timeout=240)
    finally:
        if build_proc.poll() is None:
            build_proc.kill()
            build_proc.wait()
    assert build_proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "succeeded"
    assert summary["actions"]["executed"] == 3
    assert summary["remote"]["state"] == "unavailable"
    assert "UNAVAILABLE" in err and "going on locally" in err
