"""Every record the engine stores outside the cache's index (the cache's are in
``cache/records.py``; the records sent to executors are in ``engine/interfaces.py``).

Versioning follows ``cache/records.py``: a record stored as a file carries a ``schema`` (a
reader that meets another version reads it as absent, which is always safe here); a memo
value (``RuleInfo``) is versioned by decoding: one that no longer decodes is a miss; a nested
record follows the record that holds it. Frozen, except where the class says why not.
"""

from __future__ import annotations

from typing import Any

import msgspec

from mlbuild.rules.rule import RuleOptions

__all__ = ["MARKERS_SCHEMA", "LiveLog", "Markers", "Materialized", "RuleInfo", "Stamp", "UiState"]


class RuleInfo(msgspec.Struct, frozen=True):
    """What planning needs to know of a rule, memoized under the stats of its source files
    (the ``rule`` keyspace of ``cache/memo.py``; written by ``engine/keys/actions.py``)."""

    # Every file the digest consulted (stat signature; -1s for a path looked for and absent):
    # any change to one, facades passed through included, recomputes the digest.
    files: list[tuple[str, int, int, int]]
    code: str
    imports: list[str]
    options: RuleOptions
    params: list[tuple[str, bool]]
    static: list[str] = []  # files whose content the code digest covers (trace checks skip them)
    config_defaults: dict[str, Any] | None = None
    # The types the return annotation names (dotted), and why one cannot be stored (or None):
    # read from source with the code digest, so a bad annotation fails at plan time.
    returns: list[str] = []
    return_problem: str | None = None


# ``mlbuild-out/<pkg>/.mlbuild-results`` (``engine/run/materialize.py``).
MARKERS_SCHEMA = 2  # 1 was a plain {target: result digest} JSON object


class Stamp(msgspec.Struct, frozen=True, array_like=True):
    """One materialized file as it was written: enough to see that it is untouched."""

    path: str  # relative to the package's folder
    size: int
    mtime_ns: int


class Materialized(msgspec.Struct, frozen=True):
    """A target's outputs in the package's folder: the result they came from, and its files."""

    result: str
    files: list[Stamp] = []
    tree: bool = False  # the result has a files output (``<name>/``)


class Markers(msgspec.Struct):
    """A package's markers. Not frozen: read, updated target by target under the package's
    lock, and written back once."""

    schema: int = MARKERS_SCHEMA
    targets: dict[str, Materialized] = {}


class LiveLog(msgspec.Struct, frozen=True):
    """Which step a growing log file belongs to (``engine/run/live_logs.py``): a note that lives
    only while its step runs, so it needs no schema (a note from another mlbuild is ignored
    like a stale one)."""

    key: str
    label: str
    pid: int
    started: float
    path: str = ""  # filled in when read back


class UiState(msgspec.Struct, frozen=True):
    """Where a running ``mlbuild ui`` answers, and which process serves it (``<cache>/ui.json``,
    ``engine/ui/state.py``)."""

    url: str  # "http://127.0.0.1:8765", no trailing slash
    pid: int
    schema: int = 1
    token: str | None = None  # required in links when the UI listens beyond loopback
