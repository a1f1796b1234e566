"""Write a synthetic recorded build of N steps straight into a cache, for the UI at scale.

    python benchmarks/ui_synth.py CACHE_DIR N {chain,fanout} [--status succeeded|running]

Running 10,000 steps takes minutes; writing their records takes seconds. Each step gets a
real stored result (a small msgpack value in the CAS, a KeySpec whose input digest is its
upstream's result digest, and the upstream's key as its producer), and the build record holds
what a real build records: its plan (every step, run or not), its edges and every step done,
packages of 100 as ``benchmarks/synth.py`` names them (``//p0000:t0`` …).
"""

from __future__ import annotations

import argparse
import os
import socket
import time
from pathlib import Path
from typing import Literal

import msgspec

from mlbuild.cache.digest import digest_value
from mlbuild.cache.records import (
    BUILD_SCHEMA,
    ActionResult,
    ArtifactRef,
    BuildAction,
    BuildRecord,
    Edge,
    KeySpec,
    PlannedStep,
)
from mlbuild.cache.store import LocalStore

PER_PACKAGE = 100


def label(i: int) -> str:
    return f"//p{i // PER_PACKAGE:04d}:t{i}"


def write_build(
    store: LocalStore,
    n: int,
    shape: Literal["chain", "fanout"] = "chain",
    status: Literal["succeeded", "running"] = "succeeded",
    build_id: str | None = None,
    workspace: str = "/nonexistent/synthetic",
) -> BuildRecord:
    """Record a build of ``n`` steps; returns its record. A "running" build lists only its
    first half as done."""
    now = time.time()
    results: list[ActionResult] = []
    done = n if status == "succeeded" else n // 2

    def upstream_of(i: int) -> int | None:
        return None if i == 0 else i - 1 if shape == "chain" else 0

    for i in range(done):
        value = msgspec.msgpack.encode(i)
        ref = ArtifactRef("value", store.cas.put_bytes(value), "msgpack", len(value))
        inputs: dict[str, str] = {}
        producers: dict[str, str] = {}
        up = upstream_of(i)
        if up is not None:
            inputs["prev"] = results[up].result_digest()
            producers["prev"] = results[up].key
        spec = KeySpec(1, "//rules.py:step", "0" * 32, inputs, {"i": i}, "1" * 32)
        key = digest_value(msgspec.to_builtins(spec))
        result = ActionResult(key, label(i), "//rules.py:step", [ref], spec, None, now, now + 0.01,
                              socket.gethostname(), producers=producers, seconds=0.01)
        store.index.put_action(result)
        results.append(result)
    actions = [BuildAction(r.label, r.key, "executed", 0.01) for r in results]
    record = BuildRecord(
        id=build_id or time.strftime("%Y%m%d-%H%M%S-", time.gmtime(now)) + os.urandom(3).hex(),
        started=now - 60, finished=None if status == "running" else now, status=status,
        user="bench", host=socket.gethostname(), workspace=workspace,
        argv=["mlbuild", "build", "//..."], targets=[label(i) for i in range(n)], actions=actions,
        schema=BUILD_SCHEMA, workspace_id="synthetic", pid=0,  # no process: never shown abandoned
         seconds=None if status == "running" else 60.0,
        plan=[PlannedStep(label(i), {} if upstream_of(i) is None else {"prev": label(upstream_of(i) or 0)}, {}, True)
              for i in range(n)],
        edges=[Edge(r.key, name, p) for r in results for name, p in (r.producers or {}).items()],
    )
    store.index.put_build(record)
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache", type=Path)
    ap.add_argument("n", type=int)
    ap.add_argument("shape", choices=["chain", "fanout"])
    ap.add_argument("--status", choices=["succeeded", "running"], default="succeeded")
    args = ap.parse_args()
    store = LocalStore(args.cache)
    t = time.perf_counter()
    record = write_build(store, args.n, args.shape, args.status)
    store.close()
    print(f"build {record.id}: {args.n} steps ({args.shape}) in {time.perf_counter() - t:.1f}s")


if __name__ == "__main__":
    main()
