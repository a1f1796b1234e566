"""``mlbuild builds``: the recorded builds, newest first; ``mlbuild builds show ID``: one of them."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import msgspec

from mlbuild.cache.records import BuildRecord
from mlbuild.cache.store import LocalStore, default_cache_dir
from mlbuild.engine.errors import UserError

STATUSES = ("running", "succeeded", "failed", "interrupted")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default=None, metavar="LABEL", help="only builds that requested or ran this target")
    p.add_argument("--status", default=None, choices=STATUSES, help="only builds that ended so")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N builds (default 20; 0: all)")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    sub = p.add_subparsers(dest="builds_command", metavar="show")
    show = sub.add_parser("show", help="show one build and each of its actions")
    show.add_argument("id", metavar="ID", help="a build id or a unique prefix of one")
    show.add_argument("--json", action="store_true", help="print the record as JSON on stdout")


def open_store() -> tuple[LocalStore, str]:
    """The local store (the workspace's, when run inside one) and the current package."""
    from mlbuild.engine.commands.common import Context

    try:
        ctx = Context()
    except UserError:
        return LocalStore(default_cache_dir()), ""
    return ctx.store, ctx.current_package


def find_build(store: LocalStore, build_id: str) -> BuildRecord:
    """The record named by ``build_id`` (or a unique prefix); UserError otherwise."""
    record = store.index.get_build(build_id)
    if record is None:
        known = [r.id for r in store.index.list_builds() if r.id.startswith(build_id)]
        why = f"it is the prefix of {len(known)} builds" if len(known) > 1 else "no such build is recorded"
        raise UserError(f"build {build_id!r}: {why} (mlbuild builds lists them)")
    return record


def select(records: list[BuildRecord], target: str | None, status: str | None, limit: int) -> list[BuildRecord]:
    """Filter newest-first records by a target label (requested or run) and a final status."""
    out = []
    for r in records:
        if target is not None and target not in r.targets and all(a.label != target for a in r.actions):
            continue
        if status is not None and r.status != status:
            continue
        out.append(r)
    return out[:limit] if limit > 0 else out


def counts(record: BuildRecord) -> dict[str, int]:
    statuses = [a.status for a in record.actions]
    return {s: statuses.count(s) for s in ("cached", "remote", "executed", "failed", "skipped") if s in statuses}


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _duration(r: BuildRecord) -> str:
    return "-" if r.finished is None else f"{r.finished - r.started:.1f}s"


def _commit(r: BuildRecord) -> str:
    if r.git_commit is None:
        return "-"
    return r.git_commit[:10] + ("+dirty" if r.git_dirty else "")


def _summary(r: BuildRecord) -> str:
    return ", ".join(f"{n} {s}" for s, n in counts(r).items()) or "no actions"


def list_lines(records: list[BuildRecord]) -> list[str]:
    lines = []
    for r in records:
        rerun = f" (rerun of {r.rerun_of})" if r.rerun_of else ""
        lines.append(
            f"{r.id}  {r.status:<11} {_when(r.started)}  {_duration(r):>7}  {r.user}@{r.host}  "
            f"{_commit(r):<16} {' '.join(r.targets)}  [{_summary(r)}]{rerun}"
        )
    return lines


def show_lines(r: BuildRecord) -> list[str]:
    lines = [
        f"build      {r.id}",
        f"status     {r.status}",
        f"started    {_when(r.started)}",
        f"finished   {_when(r.finished)} ({_duration(r)})",
        f"by         {r.user}@{r.host}",
        f"workspace  {r.workspace}",
        f"git        {r.git_commit or '(not a git checkout)'}" + (" (uncommitted changes)" if r.git_dirty else ""),
        f"command    {' '.join(r.argv)}",
        f"targets    {' '.join(r.targets)}",
        f"executor   {r.executor}",
    ]
    if r.overrides:
        sets = [f"{label}.{field}={value!r}" for label, fields in r.overrides.items() for field, value in fields.items()]
        lines.append(f"overrides  {' '.join(sets)}")
    if r.rerun_of:
        lines.append(f"rerun of   {r.rerun_of}")
    lines.append(f"actions    {_summary(r)}")
    for a in r.actions:
        key = a.key[:16] if a.key else "-"
        lines.append(f"  {a.status:<9} {a.seconds:7.2f}s  {key:<16}  {a.label}")
        if a.error:
            lines.append(f"            {a.error.strip().splitlines()[-1]}")
    return lines


def _label(text: str, package: str) -> str:
    from mlbuild.engine.plan.labels import parse_label

    return str(parse_label(text, package))


def _print_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")


def run(args: argparse.Namespace) -> int:
    store, package = open_store()
    if args.builds_command == "show":
        record = find_build(store, args.id)
        if args.json:
            _print_json(record)
        else:
            print("\n".join(show_lines(record)))
        return 0
    target = _label(args.target, package) if args.target else None
    records = select(store.index.list_builds(), target, args.status, args.limit)
    if args.json:
        _print_json(records)
    elif records:
        print("\n".join(list_lines(records)))
    else:
        print("no recorded builds" + (" match" if target or args.status else ""), file=sys.stderr)
    return 0
