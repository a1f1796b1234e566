"""``mlbuild cache push | pull | stats``: move results to and from the remote explicitly."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

import msgspec

from mlbuild.engine.commands.common import Context
from mlbuild.engine.commands.fetch import cached_build, remote_url
from mlbuild.engine.errors import UserError

if TYPE_CHECKING:
    from mlbuild.engine.run.remote_session import RemoteSession


def _session(ctx: Context, args: argparse.Namespace) -> RemoteSession:
    from mlbuild.engine.run.remote_session import open_session

    return open_session(remote_url(args, ctx), args, ctx)


def push(ctx: Context, args: argparse.Namespace) -> int:
    """Publish the results of the targets and everything they depend on (built here already)."""
    session = _session(ctx, args)
    if not session.upload:
        raise UserError("this workspace is a read-only client of the remote cache (remote_upload = false); "
                        "pass --remote-upload=true to push")
    result = cached_build(ctx, ctx.labels(args.targets), args, materialize=False)
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


def pull(ctx: Context, args: argparse.Namespace) -> int:
    """Download every output of the targets and of everything they depend on."""
    from mlbuild.cache.intact import ensure_intact

    result = cached_build(ctx, ctx.labels(args.targets), args, materialize=True)
    session = _session(ctx, args)
    complete = True
    try:
        for r in result.results.values():
            if r.pickled:
                continue
            # Downloads are checked as they arrive; blobs already here are taken as they are.
            complete &= not ensure_intact(ctx.store, r.outputs, session, verify=False)
    finally:
        session.close()
    s, during_build = session.stats, result.remote or {}
    blobs, nbytes = s.blobs_down + during_build.get("blobs_down", 0), s.bytes_down + during_build.get("bytes_down", 0)
    print(f"pulled {blobs} blobs ({nbytes} bytes) of {len(result.results)} results from {s.url}")
    if not complete:
        raise UserError("some outputs could not be downloaded intact (see the warnings above)")
    return 0


def stats(ctx: Context, args: argparse.Namespace) -> int:
    """The remote-cache stats of the last build or command that used a remote."""
    from mlbuild.engine.run.remote_session import last_stats

    last = last_stats(ctx.store)
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
