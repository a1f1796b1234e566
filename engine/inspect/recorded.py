"""The recorded builds a command looks at: one workspace's by default, found by any unique
part of their id, and shown as "abandoned" when the process that ran them is gone.

Several workspaces (two checkouts, a scratch copy) share one cache by default; a build record
names its workspace (``workspace_id``, or for records older than that, its root folder), and
``builds``, ``why``, ``diff``, ``lineage``, ``show`` and the UI's lists see only the current
workspace's builds unless asked for all.
"""

from __future__ import annotations

import msgspec

from mlbuild.cache.records import BuildHead, BuildRecord
from mlbuild.cache.store import LocalStore
from mlbuild.engine.errors import UserError
from mlbuild.engine.run import provenance

__all__ = ["Scope", "ALL", "builds", "display_status", "find_build", "full", "in_scope", "is_abandoned"]


class Scope(msgspec.Struct, frozen=True):
    """Which workspace's builds to see: ``workspace_id`` None means every workspace's."""

    workspace_id: str | None = None
    root: str = ""  # matches records written before workspace ids were recorded

    @property
    def everything(self) -> bool:
        return self.workspace_id is None


ALL = Scope()


def in_scope(record: BuildHead, scope: Scope) -> bool:
    if scope.workspace_id is None:
        return True
    if record.workspace_id:
        return record.workspace_id == scope.workspace_id
    return bool(scope.root) and record.workspace == scope.root


def builds(store: LocalStore, scope: Scope = ALL) -> list[BuildHead]:
    """The builds in ``scope``, newest first, without their graphs (``full`` reads one whole)."""
    return [r for r in store.index.list_build_heads() if in_scope(r, scope)]


def full(store: LocalStore, head: BuildHead) -> BuildRecord:
    """The whole record (with its plan and edges) of a build listed by ``builds``."""
    if isinstance(head, BuildRecord):
        return head
    record = store.index.get_build(head.id)
    if record is None or record.id != head.id:
        raise UserError(f"build {head.id} is no longer recorded")
    return record


def find_build(store: LocalStore, text: str, scope: Scope = ALL) -> BuildRecord:
    """The build whose id is ``text`` or contains it (once among the builds in ``scope``).

    An ambiguous part lists the candidates; a build of another workspace is named as such, so
    that the user knows to add ``--all-workspaces``.
    """
    text = text.strip()
    if not text:
        raise UserError("no build id given (mlbuild builds lists them)")
    everything = store.index.list_build_heads()
    exact = next((r for r in everything if r.id == text), None)
    if exact is not None and in_scope(exact, scope):
        return full(store, exact)
    matches = [r for r in everything if text in r.id and in_scope(r, scope)]
    if len(matches) == 1:
        return full(store, matches[0])
    if len(matches) > 1:
        shown = "\n  ".join(f"{r.id}  {' '.join(r.targets)}" for r in matches[:10])
        more = f"\n  … and {len(matches) - 10} more" if len(matches) > 10 else ""
        raise UserError(f"build id {text!r} is ambiguous: {len(matches)} builds match:\n  {shown}{more}")
    elsewhere = [r for r in everything if text in r.id]
    if elsewhere:
        where = ", ".join(sorted({r.workspace for r in elsewhere}))
        raise UserError(
            f"build {text!r} was made in another workspace ({where}); add --all-workspaces to look there"
        )
    raise UserError(f"no recorded build {text!r}: no such build, and no build id contains it (mlbuild builds lists them)")


def is_abandoned(record: BuildHead) -> bool:
    """A record still "running" whose process, on this host, is gone (killed, or the machine
    rebooted). A build on another host cannot be checked from here and stays "running"."""
    if record.status != "running" or not record.pid or record.host != provenance.host():
        return False
    return not provenance.process_alive(record.pid, record.process)


def display_status(record: BuildHead) -> str:
    return "abandoned" if is_abandoned(record) else record.status
