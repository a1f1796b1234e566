"""``mlbuild cache``: gc (and, with a remote, push / pull / stats)."""

from __future__ import annotations

import argparse

from mlbuild.engine.commands.common import Context
from mlbuild.engine.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="cache_command", metavar="SUBCOMMAND", required=True)
    gc = sub.add_parser("gc", help="evict least recently used entries until the cache fits")
    gc.add_argument("--max-size", required=True, help="e.g. 500M (500*10**6 bytes), 10Gi (10*2**30 bytes)")
    gc.add_argument("--min-age", type=float, default=3600.0, metavar="SECONDS",
                    help="spare unreferenced blobs younger than this: a build in progress may still record them (default 3600)")
    from mlbuild.engine.commands.common import add_remote_options

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
    if args.cache_command == "fsck":
        return _fsck(args)
    ctx = Context()
    if args.cache_command == "gc":
        from mlbuild.cache.gc import collect
        from mlbuild.cache.sizes import parse_size

        try:
            limit = parse_size(args.max_size)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        report = collect(ctx.store, limit, min_age=args.min_age)
        print(
            f"evicted {report.actions_evicted} entries, kept {report.actions_kept}; "
            f"deleted {report.blobs_deleted} blobs; {report.bytes_before} -> {report.bytes_after} bytes"
        )
        return 0
    if args.cache_command in ("push", "pull", "stats"):
        from mlbuild.engine.commands import remote_transfer

        return int(getattr(remote_transfer, args.cache_command)(ctx, args))
    raise UserError(f"unknown cache command {args.cache_command!r}")


def _fsck(args: argparse.Namespace) -> int:
    """Runs on the cache directory itself, without opening the store (its index may be damaged)."""
    import os

    from mlbuild.cache.fsck import fsck
    from mlbuild.cache.store import default_cache_dir
    from mlbuild.engine.plan.workspace import Workspace, find_root

    try:
        configured = Workspace(find_root(os.getcwd())).cache_dir
    except UserError:
        configured = None  # outside a workspace: the default cache
    root = default_cache_dir(configured)
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
