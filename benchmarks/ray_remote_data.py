"""``--executor ray`` on a two-node cluster: remote data (nothing shared but an S3 bucket) vs the
shared-path mode, and the bytes each step moves.

    python benchmarks/ray_remote_data.py [--steps 1000] [--pipeline-steps 20] [--no-example]

It starts, and stops at the end, a Ray head with no CPUs (``--num-cpus=0``: no step runs there),
a worker node with 2 CPUs, and moto's S3 server on loopback (all on ports and temp folders of its
own). Then, each with an empty local cache and an empty bucket prefix:

- the synthetic fan-out of ``synth.py`` (``--steps`` steps: one root, the rest read it) with
  ``--ray-data remote`` and with ``--ray-data shared``;
- a small pipeline (a chain of ``--pipeline-steps`` steps, each passing on an array of 64 KiB);
- the ResNet example (``examples/resnet``, ``//...``: five steps, torch; unless ``--no-example``).

It prints the wall time of each build, steps per second, and for remote data the bytes moved per
step, from the build's ``--json`` summary: what the client uploaded (input roots, inputs built
here), what the workers downloaded (inputs, input roots) and pushed (outputs, logs), what the
client downloaded (requested outputs), and the bucket's size. The worker node sees the client's
files here (one machine); the tests (tests/test_ray_remote_data.py) are where it cannot.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "resnet"

from synth import generate  # noqa: E402  (benchmarks/ is not a package)

PIPELINE = '''
from mlbuild import rule


@rule
def start(config: dict) -> list:
    return [config["i"]] * 8192


@rule
def step(prev: list, config: dict) -> list:
    return [x + config["i"] for x in prev]
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(log: Path, text: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while text not in (log.read_text(errors="replace") if log.exists() else ""):
        if time.monotonic() > deadline:
            raise SystemExit(f"not ready after {timeout:.0f}s: {log}\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.2)


def start(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def pipeline(root: Path, n: int) -> None:
    root.mkdir(parents=True)
    (root / "mlbuild.toml").write_text('[workspace]\nname = "pipeline"\n')
    (root / "pipe").mkdir()
    (root / "pipe" / "steps.py").write_text(PIPELINE)
    lines = ["from mlbuild import target", 'target(name="s0", rule="steps.py:start", config={"i": 0})']
    lines += [f'target(name="s{i}", rule="steps.py:step", inputs={{"prev": ":s{i - 1}"}}, config={{"i": {i}}})'
              for i in range(1, n)]
    (root / "pipe" / "BUILD.py").write_text("\n".join(lines) + "\n")


def bucket_bytes(s3: Any, bucket: str, prefix: str) -> int:
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        total += sum(o["Size"] for o in page.get("Contents", []))
    return total


def build(ws: Path, target: str, mode: str, address: str, url: str, env: dict[str, str], cache: Path,
          materialize: bool = False) -> dict[str, Any]:
    argv = [sys.executable, "-m", "mlbuild", target, "--executor", "ray", "--ray-address", address,
            "--ray-data", mode, "--remote-cache", url, "--json", *([] if materialize else ["--no-materialize"])]
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=ws, env={**env, "MLBUILD_CACHE_DIR": str(cache)}, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{mode} build failed:\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"seconds": seconds, "summary": summary}


def _b(n: float) -> str:
    if n < 100:
        return f"{n:.1f} B"
    return f"{n:.0f} B" if n < 10_000 else f"{n / 1024:.1f} KiB" if n < 10 * 2**20 else f"{n / 2**20:.1f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--pipeline-steps", type=int, default=20)
    ap.add_argument("--no-example", action="store_true", help="leave out the ResNet example")
    args = ap.parse_args()
    import boto3

    tmp = Path(tempfile.mkdtemp(prefix="mlbrdb", dir="/tmp"))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        s3_port = free_port()
        procs.append(start(["moto_server", "-H", "127.0.0.1", "-p", str(s3_port)], tmp / "moto.log", env))
        endpoint = f"http://127.0.0.1:{s3_port}"
        env["AWS_ENDPOINT_URL"] = endpoint
        wait_for(tmp / "moto.log", "Running on")
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
        s3.create_bucket(Bucket="bench")
        port = free_port()
        ray = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
        procs.append(start([ray, "start", "--head", "--block", f"--port={port}", "--num-cpus=0",
                            "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={tmp / 'h'}",
                            "--node-ip-address=127.0.0.1", f"--ray-client-server-port={free_port()}",
                            f"--dashboard-agent-listen-port={free_port()}"], tmp / "head.log", env))
        wait_for(tmp / "head.log", "Ray runtime started")
        address = f"127.0.0.1:{port}"
        worker_env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
        worker_env["MLBUILD_WORKER_CACHE"] = str(tmp / "worker-cache")
        procs.append(start([ray, "start", "--block", f"--address={address}", "--num-cpus=2",
                            "--disable-usage-stats", "--node-ip-address=127.0.0.1",
                            f"--dashboard-agent-listen-port={free_port()}"], tmp / "worker.log", worker_env))
        wait_for(tmp / "worker.log", "Ray runtime started")

        cases: list[tuple[str, int, str, Any]] = [
            ("fan-out", args.steps, "//...", lambda root: generate(root, args.steps, "fanout")),
            ("pipeline", args.pipeline_steps, f"//pipe:s{args.pipeline_steps - 1}",
             lambda root: pipeline(root, args.pipeline_steps))]
        if not args.no_example:
            cases.append(("resnet", 5, "//...", lambda root: shutil.copytree(
                EXAMPLE, root, ignore=shutil.ignore_patterns("mlbuild-out", "__pycache__"))))
        for name, steps, target, make in cases:
            for mode in ("shared", "remote"):
                ws = tmp / f"{name}-{mode}"
                make(ws)
                prefix = f"{name}-{mode}"
                # The example's outputs come back (the model, the evaluation): what a user asks for.
                out = build(ws, target, mode, address, f"s3://bench/{prefix}", env, tmp / f"cache-{name}-{mode}",
                            materialize=name == "resnet")
                executed = out["summary"]["actions"]["executed"]
                line = (f"{name:9s} {mode:6s}: {steps} steps, {executed} executed in {out['seconds']:.1f} s "
                        f"({executed / out['seconds']:.1f} steps/s)")
                if mode == "remote":
                    remote = out["summary"].get("remote") or {}
                    moved = out["summary"].get("executor") or {}
                    stored = bucket_bytes(s3, "bench", prefix + "/")
                    # The client uploads input roots (and inputs built here), the workers fetch
                    # inputs and input roots and push outputs and logs; the client downloads
                    # only what it needs; the bucket holds what both wrote.
                    line += (f"; per step: client up {_b(moved.get('client_bytes_up', 0) / executed)}, "
                             f"workers down {_b(moved.get('worker_bytes_down', 0) / executed)}, "
                             f"workers up {_b(moved.get('worker_bytes_up', 0) / executed)}, "
                             f"client down {_b(remote.get('bytes_down', 0) / executed)}, "
                             f"bucket {_b(stored / executed)}; in all: client up "
                             f"{_b(moved.get('client_bytes_up', 0))} in {moved.get('client_blobs_up', 0)} blobs, "
                             f"workers down {_b(moved.get('worker_bytes_down', 0))}")
                print(line, flush=True)
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
