"""``mlbuild cache``: gc, and with a remote cache push / pull / stats (moving results explicitly)."""

from __future__ import annotations

import argparse
import json

import msgspec

from mlbuild.engine.cli_options import add_remote_options, build_settings
from mlbuild.engine.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="cache_command", metavar="SUBCOMMAND", required=True)
    gc = sub.add_parser("gc", help="evict least recently used entries until the cache fits")
    gc.add_argument("--max-size", required=True, help="e.g. 500M (500*10**6 bytes), 10Gi (10*2**30 bytes)")
    gc.add_argument("--min-age", type=float, default=3600.0, metavar="SECONDS",
                    help="spare unreferenced blobs younger than this: a build in progress may still record them (default 3600)")
    for name, help_text in [("push", "upload targets' results (and their dependencies') to the remote cache"),
                            ("pull", "download targets' results (and their dependencies') from the remote cache")]:
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.add_argument("targets", nargs="+", metavar="TARGET", help="labels or patterns")
        sp.add_argument("-q", "--quiet", action="store_true", help="print only errors and the summary")
        add_remote_options(sp)
    fk = sub.add_parser("fsck", help="check the index against the blobs (and the blobs against their digests)")
    fk.add_argument("--repair", action="store_true",
                    help="drop entries whose blobs are gone, rebuild the lineage indexes, replace a damaged index")
    fk.add_argument("--deep", action="store_true", help="also hash every blob (slow: reads the whole cache)")
    st = sub.add_parser("stats", help="hits, misses, bytes up and down of the last build that used the remote")
    st.add_argument("--json", action="store_true", help="print the stats as JSON")


def run(args: argparse.Namespace) -> int:
    if args.cache_command == "gc":
        return gc(args)
    if args.cache_command == "push":
        return push(args)
    if args.cache_command == "pull":
        return pull(args)
    if args.cache_command == "stats":
        return stats(args)
    if args.cache_command == "fsck":
        return _fsck(args)
    raise UserError(f"unknown cache command {args.cache_command!r}")


def gc(args: argparse.Namespace) -> int:
    from mlbuild.cache.gc import collect
    from mlbuild.cache.sizes import parse_size
    from mlbuild.engine.run.context import Context

    try:
        limit = parse_size(args.max_size)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    report = collect(Context().store, limit, min_age=args.min_age)
    print(
        f"evicted {report.actions_evicted} entries, kept {report.actions_kept}; "
        f"deleted {report.blobs_deleted} blobs, {report.temp_removed} stale temp files; "
        f"{report.bytes_before} -> {report.bytes_after} bytes"
    )
    return 0


def push(args: argparse.Namespace) -> int:
    """Publish the results of the targets and everything they depend on (built here already)."""
    from mlbuild.engine.run.api import cache_only, open_build, raise_if_not_cached, require_remote
    from mlbuild.engine.run.remote_session import open_session

    with open_build(cache_only(build_settings(args, args.targets, materialize=False))) as build:
        remote = require_remote(build)
        if not build.config.remote_upload:
            raise UserError("this workspace is a read-only client of the remote cache (remote_upload = false); "
                            "pass --remote-upload=true to push")
        result = build.run()
        raise_if_not_cached(result)
        session = open_session(remote, build.store, upload=True, jobs=build.settings.jobs or 8)
        pushed = skipped = 0
        try:
            for label, r in sorted(result.results.items()):
                if r.pickled:
                    print(f"{label}: not pushed (its outputs are pickled)")
                    skipped += 1
                elif session.publish_now(r):
                    pushed += 1
                else:
                    skipped += 1
        finally:
            session.close()
    s = session.stats
    print(f"pushed {pushed} results ({s.blobs_up} blobs, {s.bytes_up} bytes) to {s.url}; {skipped} not pushed")
    if not session.available:
        raise UserError(f"the remote cache {s.url} is unavailable: {s.reason}")
    return 0


def pull(args: argparse.Namespace) -> int:
    """Download every output of the targets and of everything they depend on."""
    from mlbuild.cache.intact import ensure_intact
    from mlbuild.engine.run.api import cache_only, open_build, raise_if_not_cached, require_remote
    from mlbuild.engine.run.remote_session import open_session

    with open_build(cache_only(build_settings(args, args.targets, materialize=True))) as build:
        remote = require_remote(build)
        result = build.run()
        raise_if_not_cached(result)
        session = open_session(remote, build.store, upload=build.config.remote_upload, jobs=build.settings.jobs or 8)
        complete = True
        try:
            for r in result.results.values():
                if r.pickled:
                    continue
                # Downloads are checked as they arrive; blobs already here are taken as they are.
                complete &= not ensure_intact(build.store, r.outputs, session, verify=False)
        finally:
            session.close()
    s, during_build = session.stats, result.remote or {}
    blobs, nbytes = s.blobs_down + during_build.get("blobs_down", 0), s.bytes_down + during_build.get("bytes_down", 0)
    print(f"pulled {blobs} blobs ({nbytes} bytes) of {len(result.results)} results from {s.url}")
    if not complete:
        raise UserError("some outputs could not be downloaded intact (see the warnings above)")
    return 0


def stats(args: argparse.Namespace) -> int:
    """The remote-cache stats of the last build or command that used a remote."""
    from mlbuild.engine.run.context import Context
    from mlbuild.engine.run.remote_session import last_stats

    last = last_stats(Context().store)
    if last is None:
        print("no build has used a remote cache with this local cache yet")
        return 0
    if args.json:
        print(json.dumps(msgspec.to_builtins(last)))
        return 0
    print(f"remote:   {last.url} ({last.state}{': ' + last.reason if last.reason else ''})")
    print(f"lookups:  {last.hits} hits, {last.misses} misses, {last.rejected} entries rejected")
    print(f"download: {last.blobs_down} blobs, {last.bytes_down} bytes ({last.corrupt} corrupt blobs refused)")
    print(f"upload:   {last.blobs_up} blobs, {last.bytes_up} bytes, {last.entries_up} entries")
    print(f"calls:    {last.calls}")
    return 0


def _fsck(args: argparse.Namespace) -> int:
    """Runs on the cache directory itself, without opening the store (its index may be damaged)."""

    from mlbuild.cache.fsck import fsck
    from mlbuild.engine.run.context import store_dir

    root = store_dir()
    report = fsck(root, repair=args.repair, deep=args.deep)
    for line in report.entries_broken:
        print(f"entry {line}{' (dropped)' if args.repair else ''}")
    for digest in report.blobs_corrupt:
        print(f"blob {digest} was corrupt (removed)")
    if report.index_damaged:
        print(f"the index in {root}/index is damaged"
              + (f"; moved to {report.index_replaced}, a new one started" if report.index_replaced else ""))
    print(f"{root}: {report.entries} entries, {report.blobs} blobs{' hashed' if args.deep else ''}, "
          f"{len(report.entries_broken)} entries with missing blobs, {len(report.blobs_corrupt)} corrupt blobs, "
          f"{report.temp_files} temp files; " + ("clean" if report.clean else "repaired" if args.repair
                                                  else "run `mlbuild cache fsck --repair` to fix"))
    return 0 if report.clean or args.repair else 1
