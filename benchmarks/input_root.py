"""What a step's input root holds in the Ray executors' remote-data mode: exactly the project
files its code covers (``ActionSpec.sources``) against every ``.py`` file of the workspace (the
input root before, and the fallback for a dynamic import no trace has seen). Nothing asserted.

    python benchmarks/input_root.py [WORKSPACE ...]   # default: the examples

For each workspace: per target, the files and bytes of its exact root and of the whole listing,
and the time ``ActionFactory.with_sources`` takes per step (what a remote-data build adds to each
step it submits; never run on a no-op). Nothing runs, nothing needs a cluster: the factory is
the build's own, against a throwaway cache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workspaces", nargs="*", type=Path,
                        default=[REPO / "examples" / name for name in ("resnet", "textclf", "sweep")])
    args = parser.parse_args()

    from mlbuild.cache.store import LocalStore
    from mlbuild.engine.interfaces import ActionSpec
    from mlbuild.engine.keys.action_key import make_key_spec
    from mlbuild.engine.keys.actions import ActionFactory
    from mlbuild.engine.plan.labels import parse_pattern
    from mlbuild.engine.plan.planner import plan
    from mlbuild.engine.plan.workspace import Workspace
    from mlbuild.remote.ray_remote_data import Uploader

    print(f"{'workspace':<10} {'target':<28} {'exact root':>16} {'whole project':>18} {'with_sources':>13}")
    for root in args.workspaces:
        ws = Workspace(root)
        cache = Path(tempfile.mkdtemp(prefix="mlbuild-input-root-"))
        store = LocalStore(cache)
        try:
            the_plan = plan(ws, ws.expand(parse_pattern("//...")))
            factory = ActionFactory(ws, store)
            whole = Uploader._project_sources(_Listing(root))  # type: ignore[arg-type]
            whole_bytes = sum(os.path.getsize(root / rel) for rel in whole)
            for label in the_plan.order:
                target = the_plan.targets[label]
                info = factory.rule_info(target)
                spec = ActionSpec(key="0" * 32, label=str(label), rule_file=target.rule_file, rule_func=target.rule_func,
                                  inputs=[], config=None, options=info.options, workspace=str(root),
                                  key_spec=make_key_spec(rule=target.rule_id, code=info.code, inputs={}, config=None, env=""))
                factory.with_sources(target, spec)  # the stat cache warm, as after planning
                rounds = 200
                start = time.perf_counter()
                for _ in range(rounds):
                    exact = factory.with_sources(target, spec).sources
                per_step = (time.perf_counter() - start) / rounds
                exact_bytes = sum(os.path.getsize(root / rel) for rel in exact)
                print(f"{root.name:<10} {str(label):<28} {len(exact):>3} files {exact_bytes / 1024:>5.1f} KiB "
                      f"{len(whole):>5} files {whole_bytes / 1024:>5.1f} KiB {per_step * 1e6:>10.0f} us")
        finally:
            store.close()
            shutil.rmtree(cache, ignore_errors=True)


class _Listing:
    """Just enough of an ``Uploader`` for its workspace listing."""

    def __init__(self, root: Path) -> None:
        self.workspace = root


if __name__ == "__main__":
    sys.exit(main())
