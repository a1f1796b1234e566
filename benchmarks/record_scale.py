"""What recording the build graph costs at scale, printed (nothing is asserted).

    python benchmarks/record_scale.py [--n 10000] [--builds 5]

Writes BUILDS synthetic recorded builds of N steps (a chain and a fan-out, alternately, with the
plan, edges and producers a real build records; ``benchmarks/ui_synth.py``) into a fresh cache,
then times, best of 3: the size of one record and one rewrite of it (a running build rewrites its
record every half second), listing every build (``builds``, the UI's list), finding a build by
a part of its id, drawing a build's DAG from its record, and the lineage of a chain's last step
along its recorded edges.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).parent))
from ui_synth import write_build  # noqa: E402

from mlbuild.cache.store import LocalStore  # noqa: E402


def best(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    times, value = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return min(times), value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--builds", type=int, default=5)
    args = ap.parse_args()
    from mlbuild.engine.inspect.lineage import lineage_tree
    from mlbuild.engine.inspect.recorded import find_build
    from mlbuild.engine.ui.dag import _build_dag
    from mlbuild.engine.ui.views import list_builds

    with tempfile.TemporaryDirectory(prefix="mlbuild-record-scale-") as tmp:
        store = LocalStore(Path(tmp) / "cache")
        t = time.perf_counter()
        records = [write_build(store, args.n, "chain" if i % 2 == 0 else "fanout", build_id=f"20260101-000000-{i:06x}")
                   for i in range(args.builds)]
        print(f"wrote {args.builds} builds of {args.n} steps in {time.perf_counter() - t:.1f}s")
        chain = records[0]
        size = len(msgspec.msgpack.encode(chain))
        print(f"one record: {size / 1e6:.2f} MB ({len(chain.plan)} planned steps, {len(chain.edges)} edges)")
        s, _ = best(lambda: store.index.put_build(chain))
        print(f"rewrite one record (every 0.5 s while it runs): {s * 1000:.0f} ms")
        s, found = best(lambda: store.index.list_builds())
        print(f"list {len(found)} builds (decode every record): {s * 1000:.0f} ms")
        s, _ = best(lambda: store.index.list_build_heads())
        print(f"list {len(found)} builds without their graphs (what lists read): {s * 1000:.0f} ms")
        s, _ = best(lambda: list_builds(store))
        print(f"the UI's build list: {s * 1000:.0f} ms")
        s, _ = best(lambda: find_build(store, "00001"))
        print(f"find a build by part of its id: {s * 1000:.0f} ms")
        s, dag = best(lambda: _build_dag(store.index, chain))
        print(f"DAG of a {len(dag.nodes)}-step build from its record (layout included): {s * 1000:.0f} ms")
        last = chain.actions[-1].key
        assert last is not None
        s, tree = best(lambda: lineage_tree(store, last, record=chain))
        print(f"lineage of the chain's last step ({len(tree.nodes)} actions, recorded edges): {s * 1000:.0f} ms")
        store.close()


if __name__ == "__main__":
    main()
