"""The store's failure modes, each one error line that says what to do (cache/errors.py), and
``mlbuild cache fsck`` (issue 17, part 6). Mounts need root: a tmpfs stands in for a full disk,
a read-only remount for a read-only cache."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cli import mlbuild, mlbuild_process
from support.workspace import write_workspace

RULES = '''
from mlbuild import rule


@rule
def make(config: dict) -> bytes:
    return b"x" * config["size"]


@rule
def twice(data: bytes) -> int:
    return 2 * len(data)
'''

BUILD = '''
from mlbuild import target

target(name="small", rule="rules.py:make", config={"size": 1000})
target(name="big", rule="rules.py:make", config={"size": 8_000_000})
target(name="use", rule="rules.py:twice", inputs={"data": ":small"})
'''

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return write_workspace(tmp_path / "ws", {"p/BUILD.py": BUILD, "p/rules.py": RULES})


def one_error(stderr: str, *words: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("mlbuild: error:")]
    assert len(errors) == 1, stderr
    for w in words:
        assert w in errors[0], stderr
    return errors[0]


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_an_index_replaced_by_garbage(ws: Path, tmp_cache_dir: Path) -> None:
    mlbuild(ws, "build", "//p:use")
    (tmp_cache_dir / "index" / "data.mdb").write_bytes(os.urandom(64 * 1024))
    run = mlbuild_process(ws, "build", "//p:use", check=False)
    assert run.returncode == 2
    one_error(run.stderr, "damaged", "cache fsck --repair")
    run = mlbuild_process(ws, "cache", "fsck", check=False)
    assert run.returncode == 1 and "damaged" in run.stdout
    run = mlbuild_process(ws, "cache", "fsck", "--repair")
    assert "a new one started" in run.stdout
    # A new index: the steps run again, their blobs are found in the CAS.
    assert '"executed":2' in mlbuild_process(ws, "build", "--json", "//p:use").stdout
    assert mlbuild_process(ws, "cache", "fsck").returncode == 0


@pytest.mark.parametrize("which", ["", "index", "cas"])
def test_a_file_where_the_cache_needs_a_folder(ws: Path, tmp_cache_dir: Path, which: str) -> None:
    if which:
        tmp_cache_dir.mkdir()
    (tmp_cache_dir / which if which else tmp_cache_dir).write_text("not a folder")
    run = mlbuild_process(ws, "build", "//p:use", check=False)
    assert run.returncode == 2
    one_error(run.stderr, "is a file where the cache needs a folder")


def test_fsck_finds_and_drops_entries_whose_blobs_are_gone(ws: Path, tmp_cache_dir: Path) -> None:
    first = mlbuild(ws, "build", "--json", "//p:use").json()
    digest = first["outputs"]["//p:use"]["value"]
    (tmp_cache_dir / "cas" / digest[:2] / digest).unlink()
    run = mlbuild_process(ws, "cache", "fsck", check=False)
    assert run.returncode == 1 and "//p:use" in run.stdout and "missing" in run.stdout
    mlbuild_process(ws, "cache", "fsck", "--repair")
    assert mlbuild_process(ws, "cache", "fsck").returncode == 0
    assert mlbuild(ws, "build", "--json", "//p:use").json()["actions"]["executed"] == 1


def test_fsck_deep_removes_a_corrupt_blob(ws: Path, tmp_cache_dir: Path) -> None:
    first = mlbuild(ws, "build", "--json", "//p:small").json()
    digest = first["outputs"]["//p:small"]["value"]
    blob = tmp_cache_dir / "cas" / digest[:2] / digest
    blob.chmod(0o644)
    blob.write_bytes(b"flipped")
    assert mlbuild_process(ws, "cache", "fsck").returncode == 0  # sizes are not read
    run = mlbuild_process(ws, "cache", "fsck", "--deep", check=False)
    assert run.returncode == 1 and f"blob {digest} was corrupt" in run.stdout
    assert not blob.exists()


@needs_root
def test_a_read_only_cache_still_serves_hits(ws: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro-cache", "64m") as cache:
        env = {"MLBUILD_CACHE_DIR": str(cache)}
        mlbuild_process(ws, "build", "//p:use", env=env)
        subprocess.run(["mount", "-o", "remount,ro", str(cache)], check=True)
        run = mlbuild_process(ws, "build", "--json", "//p:use", env=env)
        assert '"executed":0' in run.stdout
        assert "read-only" in run.stderr and "Traceback" not in run.stderr
        # A step that must run cannot store its outputs: one line, the build fails.
        run = mlbuild_process(ws, "build", "//p:small", "--set", "//p:small.size=7", env=env, check=False)
        assert run.returncode == 1 and "Traceback" not in run.stderr


@needs_root
def test_a_full_cache_disk(ws: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "full-cache", "4m") as cache:
        env = {"MLBUILD_CACHE_DIR": str(cache)}
        run = mlbuild_process(ws, "build", "//p:big", env=env, check=False)
        assert run.returncode in (1, 2), run.stderr
        assert "Traceback" not in run.stderr
        assert "full" in run.stderr and "gc --max-size" in run.stderr
        # The cache is intact: what fits still builds, and hits afterwards.
        mlbuild_process(ws, "build", "//p:use", env=env)
        run = mlbuild_process(ws, "build", "--json", "//p:use", env=env)
        assert '"executed":0' in run.stdout


def test_the_index_map_starts_small_and_grows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlbuild.cache import index as index_mod
    from mlbuild.cache.records import ActionResult, KeySpec

    monkeypatch.setattr(index_mod, "MIN_MAP_SIZE", 1 << 20)
    idx = index_mod.Index(tmp_path / "index")
    try:
        start = idx.env.info()["map_size"]
        spec = KeySpec(schema=1, rule="r.py:f", code="0" * 32, inputs={}, config={"pad": "x" * 4000}, env="0" * 32)
        for i in range(2000):
            idx.put_action(ActionResult(key=f"{i:032x}", label="//p:t", rule="r.py:f", outputs=[], key_spec=spec))
        assert idx.env.info()["map_size"] > start
        assert idx.get_action(f"{1999:032x}") is not None
    finally:
        idx.close()


def test_mlbuild_starts_under_an_address_space_limit(ws: Path) -> None:
    limit = 3 << 30  # the index used to reserve a 64 GiB map up front

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.run([os.sys.executable, "-m", "mlbuild", "build", "//p:use"], cwd=ws, preexec_fn=cap,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
