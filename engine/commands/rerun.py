"""``mlbuild rerun ID [--set ...]``: build a recorded build's targets again.

A rerun is a build of the same targets in the same workspace, with the recorded build's
``--set`` overrides merged with the new ones (a new value for the same field wins), on the
recorded executor unless ``--executor`` says otherwise. It uses the cache like any build: only
the steps whose key changed (a config value set differently, code edited since) execute; add
``--no-cache`` to execute every step. The new build's record names the original
(``rerun_of``), so ``mlbuild builds show`` links the two.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import msgspec

from mlbuild.engine.cli_options import add_build_options, add_scope_option, build_settings
from mlbuild.engine.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", metavar="ID", help="the build to re-run (an id or any unique part of one; see mlbuild builds)")
    add_build_options(p)
    add_scope_option(p)


def merge_overrides(old: dict[str, Any], new: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The recorded overrides with the new ones on top, field by field."""
    merged: dict[str, dict[str, Any]] = {label: dict(fields) for label, fields in old.items()}
    for label, fields in new.items():
        merged.setdefault(label, {}).update(fields)
    return merged


def run(args: argparse.Namespace) -> int:
    from mlbuild.engine.inspect.recorded import find_build
    from mlbuild.engine.plan.labels import parse_label
    from mlbuild.engine.plan.workspace import WORKSPACE_FILE
    from mlbuild.engine.run.api import build, json_summary
    from mlbuild.engine.run.build import raise_for_failures
    from mlbuild.engine.run.context import open_records

    store, _, package, scope = open_records(args.all_workspaces)
    try:
        original = find_build(store, args.id, scope)
    finally:
        store.close()  # the build opens the recorded workspace's store itself
    root = Path(original.workspace)
    if not (root / WORKSPACE_FILE).is_file():
        raise UserError(f"build {original.id} was made in {root}, which is no longer a workspace; it cannot be re-run")
    settings = build_settings(args, original.targets)
    # New --set values are read relative to where the user is; the build runs in the recorded workspace.
    new = {str(parse_label(label, package)): fields for label, fields in settings.overrides.items()}
    result = build(msgspec.structs.replace(
        settings, directory=str(root), executor=settings.executor or original.executor,
        overrides=merge_overrides(original.overrides, new), rerun_of=original.id,
    ))
    print(f"build {result.record.id} re-ran build {original.id}", file=sys.stderr)
    if args.json:
        sys.stdout.write(msgspec.json.encode(json_summary(result)).decode() + "\n")
    raise_for_failures(result)
    return 0
