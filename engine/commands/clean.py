"""``mlbuild clean``: remove ``mlbuild-out/``; the cache is never touched."""

from __future__ import annotations

import argparse
import shutil

from mlbuild.engine.plan.workspace import OUTPUT_DIR
from mlbuild.engine.run.context import Context


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    ctx = Context()
    out = ctx.ws.root / OUTPUT_DIR
    if out.exists():
        shutil.rmtree(out)
        print(f"removed {out}")
    else:
        print("nothing to clean")
    return 0
