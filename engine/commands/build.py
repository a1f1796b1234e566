"""``mlbuild build``: build targets and everything they need."""

from __future__ import annotations

import argparse
import sys

import msgspec

from mlbuild.engine.cli_options import add_build_options, build_settings
from mlbuild.engine.run.api import build, json_summary
from mlbuild.engine.run.build import raise_for_failures


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="+", metavar="TARGET", help="labels or patterns: //pkg:name, //pkg/..., //...")
    add_build_options(p)


def run(args: argparse.Namespace) -> int:
    result = build(build_settings(args, args.targets))
    if args.json:
        sys.stdout.write(msgspec.json.encode(json_summary(result)).decode() + "\n")
    raise_for_failures(result)
    return 0
