"""``mlbuild show``: where a target's outputs are and, for small values, the value.

Which result: the one of the latest build of this workspace where the target succeeded (so
after ``mlbuild //x --set //x.n=100``, ``show //x`` shows that build's result); ``--build ID``
that build's; ``--set`` the result today's BUILD.py gives with those overrides, if it is cached.
With no build of this workspace recorded (a fresh clone, a cleared cache), the result today's
BUILD.py resolves to in the local or remote cache (``--remote-cache``).
The outputs are written under ``mlbuild-out/`` when they are not there already; replacing
other outputs there is said on stderr, never done silently.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mlbuild.cache.cas import CorruptBlob, MissingBlob
from mlbuild.cache.records import ActionResult, ArtifactRef
from mlbuild.engine.cli_options import add_scope_option
from mlbuild.engine.errors import UserError
from mlbuild.engine.plan.labels import Label
from mlbuild.engine.run.build import output_dir
from mlbuild.engine.run.context import Context
from mlbuild.rules.codecs.registry import VALUE_SUFFIX

SMALL = 64 * 1024


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="+", metavar="TARGET")
    p.add_argument("--json", action="store_true", help="print the outputs as JSON")
    p.add_argument("--build", default=None, metavar="ID", help="the result of this recorded build (any unique part of its id)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="//PKG:T.FIELD=VALUE",
                   help="the result with these config overrides, as a build with them would give it (repeatable)")
    p.add_argument("--remote-cache", default=None, metavar="URL", help="fetch outputs missing here from this remote cache")
    add_scope_option(p)


def run(args: argparse.Namespace) -> int:
    ctx = Context()
    labels = ctx.labels(args.targets)
    if args.build and args.overrides:
        raise UserError("show: --build and --set do not go together (a build's result is what it was built with)")
    remote = _remote(ctx, args)
    origin: dict[Label, str] | str
    try:
        if args.overrides:
            results, origin = _with_overrides(ctx, labels, args), "--set"
        else:
            results, origin = _recorded(ctx, labels, args, remote)
        _materialize(ctx, results, origin, remote)
    finally:
        if remote is not None:
            remote.close()
    shown = {str(label): _entry(ctx, label, results[label], origin.get(label) if isinstance(origin, dict) else None)
             for label in labels}
    if args.json:
        print(json.dumps(shown, indent=2, default=str))
        return 0
    for label_text, entry in shown.items():
        print(label_text)
        for k in ("build", "key", "files", "value_path"):
            if k in entry:
                print(f"  {k}: {entry[k]}")
        if "value" in entry:
            print("  value: " + json.dumps(entry["value"], indent=2, default=str).replace("\n", "\n  "))
    return 0


def _recorded(
    ctx: Context, labels: list[Label], args: argparse.Namespace, remote: Any
) -> tuple[dict[Label, ActionResult], dict[Label, str]]:
    """Each label's result in the latest build of this workspace where it succeeded (or in
    build ``--build``), and that build's id."""
    from mlbuild.engine.inspect.hashgraph import HashGraph
    from mlbuild.engine.inspect.recorded import ALL, Scope, find_build
    from mlbuild.engine.run.build_record import workspace_id

    scope = ALL if args.all_workspaces else Scope(workspace_id(ctx.ws), str(ctx.ws.root))
    graph = HashGraph(ctx.store, scope)
    record = find_build(ctx.store, args.build, scope) if args.build else None
    results: dict[Label, ActionResult] = {}
    origin: dict[Label, str] = {}
    unrecorded: list[Label] = []
    for label in labels:
        if record is not None:
            action = next((a for a in reversed(record.actions) if a.label == str(label)), None)
            if action is None or not action.key or action.status not in ("cached", "remote", "executed"):
                fate = f"its step {action.status}" if action is not None else "it is not in that build"
                raise UserError(f"{label}: build {record.id} has no result of it ({fate})")
            key, build_id = action.key, record.id
        else:
            found = graph.latest_build(str(label))
            if found is None:
                unrecorded.append(label)
                continue
            key, build_id = found[1], found[0].id
        result = graph.action(key)
        if result is None and remote is not None:
            result = remote.lookup(key)
            if result is not None:
                ctx.store.index.put_action(result)
        if result is None:
            raise UserError(
                f"{label}: the result of build {build_id} is no longer in the cache (collected?); "
                f"build it again: mlbuild build {label}"
            )
        results[label], origin[label] = result, build_id
    if unrecorded:
        # No build of this workspace (a fresh clone, a cleared cache): what today's BUILD.py
        # resolves to in the local or remote cache, as a build would find it.
        found_now = _with_overrides(ctx, unrecorded, args)
        for label in unrecorded:
            results[label], origin[label] = found_now[label], ""
    return results, origin


def _with_overrides(ctx: Context, labels: list[Label], args: argparse.Namespace) -> dict[Label, ActionResult]:
    """The results today's BUILD.py gives with ``--set``, from the caches; nothing runs."""
    from mlbuild.engine.run.api import build
    from mlbuild.engine.run.settings import BuildSettings, RemoteSettings, parse_set

    result = build(BuildSettings(targets=[str(label) for label in labels], overrides=parse_set(args.overrides),
                                 remote=RemoteSettings(url=args.remote_cache), materialize=False, run_steps=False,
                                 quiet=True))
    out = {}
    for label in labels:
        r = result.results.get(str(label))
        if r is None and not args.overrides:
            raise UserError(f"{label} is not built, or out of date: run `mlbuild build {label}` first")
        if r is None:
            raise UserError(f"{label} with {' '.join(args.overrides)} is not built: run `mlbuild build {label} "
                            f"{' '.join('--set ' + s for s in args.overrides)}` first")
        out[label] = r
    return out


def _remote(ctx: Context, args: argparse.Namespace) -> Any:
    """A read-only session with the remote cache (--remote-cache, or the configured one), or None."""
    from mlbuild.engine.run.remote_session import open_session
    from mlbuild.engine.run.settings import BuildSettings, RemoteSettings, resolve_config

    config = resolve_config(BuildSettings(targets=[], remote=RemoteSettings(url=args.remote_cache, upload=False)), ctx.ws)
    return None if config.remote is None else open_session(config.remote, ctx.store, upload=False)


def _materialize(ctx: Context, results: dict[Label, ActionResult], origin: Any, remote: Any) -> None:
    """Write the outputs under mlbuild-out/ where they are not already; say so for each target
    whose outputs there (from another build, maybe a newer one) are replaced."""
    from mlbuild.cache.trees import read_tree
    from mlbuild.engine.plan.workspace import OUTPUT_DIR
    from mlbuild.engine.run.materialize import Materializer, read_markers

    def ensure_local(refs: list[Any]) -> bool:
        """Blobs missing here come from the remote (a files output: its listing, then its files)."""
        missing = [r for r in refs if not ctx.store.cas.has(r.digest)]
        if missing and (remote is None or not remote.ensure_local(missing)):
            return False
        for ref in refs:
            if ref.codec == "tree":
                try:
                    entries = [ArtifactRef(e.path, e.digest, "msgpack", e.size) for e in read_tree(ctx.store.cas, ref.digest)]
                except (CorruptBlob, MissingBlob):
                    return False
                if not ensure_local(entries):
                    return False
        return True

    materializer = Materializer(ctx.ws.root / OUTPUT_DIR, ctx.store.cas, ensure_local)
    for label, result in results.items():
        current = read_markers(materializer.package_dir(label)).get(label.name)
        if current is not None and current != result.result_digest():
            which = "the --set" if not isinstance(origin, dict) else f"build {origin[label]}'s" if origin[label] else "the cached"
            print(f"mlbuild: note: {output_dir(ctx.ws, label).relative_to(ctx.ws.root)}/{label.name} held other "
                  f"outputs of {label} (result {current[:12]}); replacing them with {which} result "
                  f"{result.result_digest()[:12]}", file=sys.stderr)
    materializer.materialize(list(results.items()))


def _entry(ctx: Context, label: Label, r: ActionResult, build_id: str | None) -> dict[str, Any]:
    base = output_dir(ctx.ws, label)
    entry: dict[str, Any] = {"key": r.key}
    if build_id:
        entry["build"] = build_id
    for o in r.outputs:
        if o.codec == "tree":
            entry["files"] = str(base / label.name)
        else:
            entry["value_path"] = str(base / f"{label.name}.value{VALUE_SUFFIX[o.codec]}")
            if o.size <= SMALL and o.codec != "pickle":
                from mlbuild.rules.codecs import to_display

                try:
                    entry["value"] = to_display(o.codec, ctx.store.cas.get_bytes(o.digest))
                except (CorruptBlob, MissingBlob) as exc:
                    raise UserError(f"{label}: {exc}; rebuild it with mlbuild build {label}") from None
        entry.setdefault("digests", {})[o.name] = o.digest
    return entry
