"""Smaller faults of issue 17: stale temp files removed by ``cache gc``, symlinks in ``out``
refused with a message, large numpy values stored with bounded extra memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tracemalloc
import types
from pathlib import Path

import numpy as np

from mlbuild.cache.cas import CAS
from mlbuild.cache.digest import digest_bytes
from mlbuild.cache.gc import remove_stale_temp
from mlbuild.engine.run.runner import LARGE_ARRAY, _store_outputs
from mlbuild.rules.codecs.arrays import encode_npy

from support.cli import mlbuild
from support.workspace import write_workspace


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old), follow_symlinks=False)


def test_gc_removes_temp_files_of_dead_processes_only(tmp_path: Path, tmp_cache_dir: Path) -> None:
    ws = write_workspace(tmp_path / "ws", {"p/BUILD.py": ""})
    tmp = tmp_cache_dir / "tmp"
    tmp.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale_blob, young_blob = tmp / f"blob-p{dead}-0123abcd", tmp / "blob-4567ef01"
    live_blob = tmp / f"blob-p{os.getpid()}-89ab"  # being written by a build that runs now
    stale_dir, live_dir = tmp / f"action-p{dead}-x1", tmp / f"action-p{os.getpid()}-x2"
    for f in (stale_blob, young_blob, live_blob):
        f.write_bytes(b"half a blob")
    for d in (stale_dir, live_dir):
        (d / "out").mkdir(parents=True)
        (d / "out" / "f").write_bytes(b"x")
    for p in (stale_blob, stale_dir, live_dir, live_blob):
        _age(p, 7200)
    run = mlbuild(ws, "cache", "gc", "--max-size", "10G")
    assert "2 stale temp files" in run.stdout
    assert sorted(p.name for p in tmp.iterdir()) == sorted([young_blob.name, live_dir.name, live_blob.name])
    # --min-age 0 during a build: only the young blob goes, what live processes write stays
    assert remove_stale_temp(tmp, 0) == 1


def test_a_symlink_in_out_is_refused_with_a_message(tmp_path: Path) -> None:
    ws = write_workspace(tmp_path / "ws", {
        "p/rules.py": (
            "import os\nfrom pathlib import Path\nfrom mlbuild import rule\n\n\n"
            "@rule\ndef linky(out: Path) -> None:\n"
            "    (out / 'real.txt').write_text('x')\n"
            "    os.symlink('/etc/hostname', out / 'host')\n"),
        "p/BUILD.py": 'from mlbuild import target\ntarget(name="l", rule="rules.py:linky")\n',
    })
    run = mlbuild(ws, "build", "//p:l", check=False)
    assert run.returncode == 1
    assert "out/host is a symbolic link (to /etc/hostname)" in run.stderr and "regular files only" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_large_array_is_stored_with_bounded_extra_memory(tmp_path: Path) -> None:
    cas = CAS(tmp_path / "cas")
    spec = types.SimpleNamespace(options=types.SimpleNamespace(allow_pickle=False))
    value = np.arange(16 << 20, dtype=np.float64)  # 128 MiB
    assert value.nbytes > LARGE_ARRAY
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        [ref] = _store_outputs(value, None, spec, cas)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"storing a 128 MiB array took {peak >> 20} MiB more"
    assert ref.codec == "npy" and ref.size == cas.size(ref.digest)
    # the same bytes as the codec's, so the digest (and the key downstream) is the same
    small = np.arange(5 << 20, dtype=np.float64)[::-1]  # 40 MiB, not C-contiguous
    [small_ref] = _store_outputs(small, None, spec, cas)  # type: ignore[arg-type]
    assert small_ref.digest == digest_bytes(encode_npy(small))
    assert np.array_equal(np.load(cas.path(small_ref.digest)), small)
