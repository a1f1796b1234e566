"""Remote-cache throughput against file:// and a local S3 (moto) server, next to a plain
parallel fsspec copy of the same bytes; and the remote calls a no-op build makes (zero).

    python benchmarks/remote_throughput.py [--small-count 1000] [--small-kib 16] [--large-mib 1024]
                                          [--repeat 3] [--backends file,s3]

Prints numbers, asserts nothing. With ``--repeat N`` every case runs N times (each run compares
against its own plain copy, so load on a shared machine hits both sides alike) and a last table
gives the median ratio of each. "ratio" is mlbuild's throughput over the plain copy's
(target: 80% or better). mlbuild's push goes through ``RemoteSession.publish_now`` (a result
whose outputs are the blobs: a tree of the small files, or one large value); its pull through
``RemoteSession.ensure_local`` into an empty local cache, which verifies every blob's digest
before adopting it. The plain copy is ``fs.put_file`` / ``fs.get_file`` on a thread pool of the
same size, with no verification.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mlbuild.cache.records import ActionResult, ArtifactRef, KeySpec
from mlbuild.cache.store import LocalStore
from mlbuild.cache.trees import put_tree, read_tree
from mlbuild.engine.run.remote_session import RemoteSession
from mlbuild.remote.fsspec_cache import FsspecRemoteCache

JOBS = 8


def start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with log.open("wb") as out:
        proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint + "/", timeout=2).close()
            return proc, endpoint
        except urllib.error.HTTPError:
            return proc, endpoint
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.1)


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def result_for(refs: list[ArtifactRef], key: str) -> ActionResult:
    spec = KeySpec(schema=1, rule="bench.py:f", code="0" * 32, inputs={}, config=None, env="0" * 32)
    return ActionResult(key=key, label="//bench:t", rule="bench.py:f", outputs=refs, key_spec=spec)


def session(url: str, options: dict[str, Any], store: LocalStore) -> RemoteSession:
    return RemoteSession(FsspecRemoteCache(url, storage_options=options), store, timeout=60, jobs=JOBS)


def plain_copy(fs: Any, pairs: list[tuple[str, str]], upload: bool) -> None:
    """The baseline: fsspec's own put_file / get_file, in parallel, nothing else."""
    def one(pair: tuple[str, str]) -> None:
        local, remote = pair
        if upload:
            fs.put_file(local, remote)
        else:
            fs.get_file(remote, local)

    if upload and "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        for d in {os.path.dirname(r) for _, r in pairs}:
            fs.makedirs(d, exist_ok=True)
    with ThreadPoolExecutor(JOBS) as pool:
        list(pool.map(one, pairs))


def bench_case(name: str, url: str, options: dict[str, Any], work: Path, refs: list[ArtifactRef],
               src_store: LocalStore, total: int, run: int = 0) -> dict[str, float]:
    """One push and one pull against the plain copy; returns {"push": ratio, "pull": ratio}."""
    import fsspec.core

    fs, root = fsspec.core.url_to_fs(url, **options)
    root = root.rstrip("/")
    digests = sorted({r.digest for r in refs})
    slug = "".join(c if c.isalnum() else "-" for c in name) + f"-{run}"
    result = result_for(refs, slug.ljust(32, "0")[:32])

    # plain copy, to a separate prefix so that neither side finds the other's objects
    up_pairs = [(str(src_store.cas.path(d)), f"{root}/plain-{run}/{d}") for d in digests]
    t_plain_up = timed(lambda: plain_copy(fs, up_pairs, upload=True))
    dl = work / f"plain-down-{slug}"
    dl.mkdir()
    down_pairs = [(str(dl / d), f"{root}/plain-{run}/{d}") for d in digests]
    t_plain_down = timed(lambda: plain_copy(fs, down_pairs, upload=False))
    shutil.rmtree(dl)

    s = session(f"{url}/mlbuild-{run}", options, src_store)
    t_up = timed(lambda: s.publish_now(result))
    s.close()
    assert s.available and s.stats.entries_up == 1, s.stats
    fresh = LocalStore(work / f"fresh-{slug}")
    r = session(f"{url}/mlbuild-{run}", options, fresh)
    ok = [False]

    def pull() -> None:
        ok[0] = r.ensure_local(refs)

    t_down = timed(pull)
    r.close()
    shutil.rmtree(fresh.root)
    mb = total / 1e6
    ratios: dict[str, float] = {}
    for what, plain, ours in (("push", t_plain_up, t_up), ("pull", t_plain_down, t_down)):
        print(f"{name:28s} {what}: plain fsspec {mb / plain:8.1f} MB/s ({plain:6.2f}s)   "
              f"mlbuild {mb / ours:8.1f} MB/s ({ours:6.2f}s)   ratio {plain / ours:5.0%}"
              + ("" if what == "push" or ok[0] else "   (PULL INCOMPLETE)"), flush=True)
        ratios[what] = plain / ours
    return ratios


def noop_build_calls(work: Path) -> None:
    ws = work / "noop-ws"
    (ws / "p").mkdir(parents=True)
    (ws / "mlbuild.toml").write_text('[workspace]\nname = "noop"\n')
    (ws / "p" / "BUILD.py").write_text('from mlbuild import target\ntarget(name="t", rule="r.py:f", config={"n": 3})\n')
    (ws / "p" / "r.py").write_text("from mlbuild import rule\n\n\n@rule\ndef f(config: dict) -> int:\n    return config['n']\n")
    env = {**os.environ, "MLBUILD_CACHE_DIR": str(work / "noop-cache"), "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    cmd = [sys.executable, "-m", "mlbuild", "build", "//p:t", "--json", "-q"]
    subprocess.run(cmd, cwd=ws, env=env, check=True, capture_output=True)
    out = subprocess.run([*cmd, "--remote-cache", "s3://unreachable/cache"], cwd=ws, env=env, check=True,
                         capture_output=True, text=True).stdout
    remote = json.loads(out.strip().splitlines()[-1])["remote"]
    print(f"no-op build against a remote (an unreachable one): {remote['calls']} remote calls, state {remote['state']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small-count", type=int, default=1000)
    ap.add_argument("--small-kib", type=int, default=16)
    ap.add_argument("--large-mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=1, help="runs of every case; the last table gives medians")
    ap.add_argument("--backends", default="file,s3", help="comma-separated: file, s3")
    args = ap.parse_args()
    backends = set(args.backends.split(","))

    work = Path(tempfile.mkdtemp(prefix="mlbuild-remote-bench-"))
    proc, endpoint = start_moto(work / "moto.log")
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
                     aws_secret_access_key="x").create_bucket(Bucket="bench")
        s3_options = {"key": "x", "secret": "x", "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
        src = LocalStore(work / "src")

        small_dir = work / "small"
        small_dir.mkdir()
        for i in range(args.small_count):
            (small_dir / f"a{i:05d}.bin").write_bytes(os.urandom(args.small_kib * 1024))
        tree, small_total = put_tree(src.cas, small_dir)
        small_refs = [ArtifactRef("files", tree, "tree", small_total)]
        small_refs += [ArtifactRef(e.path, e.digest, "msgpack", e.size) for e in read_tree(src.cas, tree)]

        big = work / "big.bin"
        with big.open("wb") as f:
            for _ in range(args.large_mib):
                f.write(os.urandom(1024 * 1024))
        big_digest, big_size = src.cas.put_file(big)
        big.unlink()
        big_refs = [ArtifactRef("value", big_digest, "msgpack", big_size)]

        print(f"{os.cpu_count()} CPUs, {JOBS} transfer threads; moto at {endpoint}")
        small_name = f"{args.small_count} x {args.small_kib} KiB"
        big_name = f"1 x {args.large_mib} MiB"
        ratios: dict[str, list[float]] = {}
        cases = [(b, u, o) for b, u, o in (("file://", f"file://{work / 'remote'}", {}), ("s3://", "s3://bench", s3_options))
                 if b.rstrip(":/") in backends]
        for run in range(args.repeat):
            for backend, url, options in cases:
                for name, refs, total in ((f"{backend} {small_name}", small_refs, small_total),
                                          (f"{backend} {big_name}", big_refs, big_size)):
                    for what, ratio in bench_case(name, url, options, work, refs, src, total, run).items():
                        ratios.setdefault(f"{name:28s} {what}", []).append(ratio)
        if args.repeat > 1:
            print(f"median ratio over {args.repeat} runs (each run against its own plain copy):")
            for case, values in ratios.items():
                print(f"{case}: median {statistics.median(values):5.0%}   runs "
                      + " ".join(f"{v:.0%}" for v in values))
        noop_build_calls(work)
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
