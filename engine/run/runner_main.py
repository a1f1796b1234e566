"""``python -m mlbuild.engine.run.runner_main``: run one action in a process of its own (a container).

The CAS the container sees is read-only; new blobs go to a writable scratch directory, from
which the host adopts them into its CAS after checking each one's digest. So a step in a
container can never damage a blob already in the cache.

    python -m mlbuild.engine.run.runner_main --cas /mlbuild/cas --scratch /mlbuild/scratch

reads ``<scratch>/spec.msgpack`` (an encoded ActionSpec) and writes the encoded ActionOutcome to
``<scratch>/outcome.msgpack``; the new blobs are under ``<scratch>/cas/``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mlbuild.cache.cas import CAS
from mlbuild.engine.interfaces import RUNNER_NEW_BLOBS_DIR as NEW_BLOBS_DIR
from mlbuild.engine.interfaces import RUNNER_OUTCOME_FILE as OUTCOME_FILE
from mlbuild.engine.interfaces import RUNNER_SPEC_FILE as SPEC_FILE
from mlbuild.engine.run.runner import run_encoded_with


class OverlayCAS(CAS):
    """Reads from a read-only lower CAS and from the upper one; writes only to the upper one."""

    def __init__(self, lower: str | os.PathLike[str], upper: str | os.PathLike[str]) -> None:
        super().__init__(upper)
        self.lower = CAS.__new__(CAS)
        self.lower.root = Path(lower)

    def path(self, digest: str) -> Path:
        lower = self.lower.root / digest[:2] / digest
        return lower if lower.exists() else self.root / digest[:2] / digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlbuild.engine.run.runner_main")
    parser.add_argument("--cas", required=True, help="the read-only CAS holding the inputs")
    parser.add_argument("--scratch", required=True, help="writable: spec in, outcome and new blobs out")
    args = parser.parse_args(argv)
    scratch = Path(args.scratch)
    cas = OverlayCAS(args.cas, scratch / NEW_BLOBS_DIR)
    outcome = run_encoded_with((scratch / SPEC_FILE).read_bytes(), cas)
    tmp = scratch / (OUTCOME_FILE + ".tmp")
    tmp.write_bytes(outcome)
    os.replace(tmp, scratch / OUTCOME_FILE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
