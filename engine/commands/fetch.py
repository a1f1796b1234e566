"""``mlbuild fetch //target``: take a target's outputs from the caches, never by running it.

Downloads the target's outputs from the remote cache on demand (nothing else it depends on)
and materializes them under ``mlbuild-out/``. A target that is in neither cache is an error
naming it; ``mlbuild build`` is what runs steps.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mlbuild.engine.cli_options import add_remote_options, build_settings
from mlbuild.engine.plan.labels import parse_label
from mlbuild.engine.plan.workspace import OUTPUT_DIR
from mlbuild.engine.run.api import cached_build
from mlbuild.rules.codecs.registry import VALUE_SUFFIX


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="+", metavar="TARGET", help="labels or patterns")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the summary")
    add_remote_options(p)


def run(args: argparse.Namespace) -> int:
    result = cached_build(build_settings(args, args.targets, materialize=True), remote_required=True)
    for text in result.record.targets:
        label = parse_label(text)
        base = Path(result.record.workspace) / OUTPUT_DIR / label.package
        for o in result.results[text].outputs:
            path = base / label.name if o.codec == "tree" else base / f"{label.name}.value{VALUE_SUFFIX[o.codec]}"
            print(f"{label} {o.name}: {path}")
    return 0
