"""``mlbuild config``: every effective setting and where it came from.

Each setting is taken from the first of: a flag, an environment variable, ``mlbuild.toml``,
the default (see engine/run/settings.py). The same flags as ``mlbuild build`` may be given, to
see what a build with them would use.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import msgspec

from mlbuild.engine.cli_options import add_executor_options, add_remote_options, build_settings
from mlbuild.engine.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the settings as JSON on stdout")
    add_executor_options(p)
    add_remote_options(p)


def run(args: argparse.Namespace) -> int:
    from mlbuild.engine.plan.workspace import Workspace, find_root
    from mlbuild.engine.run.backends import executor_class, executor_options
    from mlbuild.engine.run.settings import Setting, option_settings, resolve_config

    try:
        ws: Workspace | None = Workspace(find_root(os.getcwd()))
    except UserError:
        ws = None  # outside a workspace: the environment and the defaults still apply
    settings = build_settings(args, [])
    config = resolve_config(settings, ws)
    options = settings.executor_options or executor_options(executor_class(config.executor), settings.executor_flags)
    entries = [Setting("workspace", str(ws.root) if ws else None, "found from the current folder"),
               *config.settings, *option_settings(options)]
    if args.json:
        sys.stdout.write(msgspec.json.encode({e.name: {"value": e.value, "source": e.source} for e in entries}).decode() + "\n")
        return 0
    width = max(len(e.name) for e in entries)
    for e in entries:
        value = "(none)" if e.value is None else json.dumps(e.value) if not isinstance(e.value, str) else e.value
        print(f"{e.name:<{width}}  {value}  ({e.source})")
    return 0
