"""``mlbuild cache``: gc (and, with a remote, push / pull / stats)."""

from __future__ import annotations

import argparse

from mlbuild.engine.commands.common import Context
from mlbuild.engine.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="cache_command", metavar="SUBCOMMAND", required=True)
    gc = sub.add_parser("gc", help="evict least recently used entries until the cache fits")
    gc.add_argument("--max-size", required=True, help="e.g. 500M, 10G")


def run(args: argparse.Namespace) -> int:
    ctx = Context()
    if args.cache_command == "gc":
        from mlbuild.cache.gc import collect, parse_size

        try:
            limit = parse_size(args.max_size)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        report = collect(ctx.store, limit)
        print(
            f"evicted {report.actions_evicted} entries, kept {report.actions_kept}; "
            f"deleted {report.blobs_deleted} blobs; {report.bytes_before} -> {report.bytes_after} bytes"
        )
        return 0
    raise UserError(f"unknown cache command {args.cache_command!r}")
