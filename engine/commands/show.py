"""``mlbuild show``: where a target's outputs are and, for small values, the value."""

from __future__ import annotations

import argparse
import json

from mlbuild.cache.cas import CorruptBlob, MissingBlob
from mlbuild.engine.commands.common import Context
from mlbuild.engine.errors import UserError
from mlbuild.engine.run.build import output_dir
from mlbuild.engine.run.materialize import VALUE_SUFFIX

SMALL = 64 * 1024


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="+", metavar="TARGET")
    p.add_argument("--json", action="store_true", help="print the outputs as JSON")


def run(args: argparse.Namespace) -> int:
    from mlbuild.engine.commands.build import execute

    ctx = Context()
    labels = ctx.labels(args.targets)
    # Resolving the keys against the caches finds the current outputs; nothing runs.
    result = execute(ctx, labels, _quiet_args(), materialize=True, run_steps=False)
    shown = {}
    for label in labels:
        r = result.results.get(str(label))
        if r is None:
            raise UserError(f"{label} is not built, or out of date: run `mlbuild build {label}` first")
        base = output_dir(ctx.ws, label)
        entry: dict[str, object] = {"key": r.key}
        for o in r.outputs:
            if o.codec == "tree":
                entry["files"] = str(base / label.name)
            else:
                entry["value_path"] = str(base / f"{label.name}.value{VALUE_SUFFIX[o.codec]}")
                if o.size <= SMALL and o.codec != "pickle":
                    from mlbuild.rules.artifacts import to_display

                    try:
                        entry["value"] = to_display(o.codec, ctx.store.cas.get_bytes(o.digest))
                    except (CorruptBlob, MissingBlob) as exc:
                        raise UserError(f"{label}: {exc}; rebuild it with mlbuild build {label}") from None
            entry.setdefault("digests", {})[o.name] = o.digest  # type: ignore[index]
        shown[str(label)] = entry
    if args.json:
        print(json.dumps(shown, indent=2, default=str))
        return 0
    for label_text, entry in shown.items():
        print(label_text)
        for k in ("key", "files", "value_path"):
            if k in entry:
                print(f"  {k}: {entry[k]}")
        if "value" in entry:
            print("  value: " + json.dumps(entry["value"], indent=2, default=str).replace("\n", "\n  "))
    return 0


def _quiet_args() -> argparse.Namespace:
    return argparse.Namespace(
        jobs=None, keep_going=False, no_cache=False, executor=None, overrides=[], json=False, quiet=True
    )
