"""What the UI's JSON API returns, read from the local store: builds, steps, artifacts, history.

Every response is a msgspec Struct defined here (documented in ``docs/ui-api.md``); the server
only routes requests to these functions and encodes their results. Nothing here writes to the
store.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from mlbuild.cache.cas import CorruptBlob, MissingBlob
from mlbuild.cache.records import ActionResult, BuildHead, BuildRecord
from mlbuild.cache.store import LocalStore
from mlbuild.engine.errors import UserError
from mlbuild.engine.inspect.hashgraph import HashGraph
from mlbuild.engine.inspect.keydiff import Cause, KeyDiffer
from mlbuild.engine.inspect.lineage import UNRECORDED
from mlbuild.engine.inspect.lineage_render import cause_text
from mlbuild.engine.inspect.recorded import ALL, Scope, builds, display_status, find_build
from mlbuild.engine.ui.dag import Dag, build_dag
from mlbuild.engine.ui.render import Block, blob_url, render_artifact

__all__ = [
    "NotFound", "BadRequest", "BuildSummary", "BuildList", "BuildDetail", "StepDetail", "StepOutput", "StepCode",
    "StepEnv", "LogText", "TargetHistory", "list_builds", "build_detail", "step_detail",
    "step_output", "step_code", "step_env", "log_text", "target_history", "target_labels",
    "WorkspaceList", "workspaces", "workspace_scope", "find",
]

MAX_LOG = 1024 * 1024  # bytes of a log shown inline: the tail, the rest is a download
MAX_TARGETS = 20  # requested labels listed in a summary (a //... build has thousands)


class NotFound(LookupError):
    """The build, action or blob asked for is not in this store."""


class BadRequest(ValueError):
    """A request names something malformed (not a digest, not a label)."""


class BuildSummary(msgspec.Struct):
    id: str
    started: float
    finished: float | None
    status: str
    user: str
    host: str
    workspace: str
    targets: list[str]  # the first MAX_TARGETS requested labels; target_count says how many
    argv: list[str]
    git_commit: str | None
    git_dirty: bool | None
    executor: str
    counts: dict[str, int]  # status -> number of actions
    target_count: int = 0
    patterns: list[str] = []  # the labels and patterns on the command line (//..., //pkg:all)
    workspace_id: str = ""  # "" for a record older than workspace ids
    seconds: float | None = None  # how long it took (a monotonic clock); None while it runs
    schema: int = 1  # the record's schema: 1 has no recorded graph


class WorkspaceEntry(msgspec.Struct):
    """One workspace that has builds in this cache: what the build list can be filtered by."""

    id: str  # the ``workspace`` filter value; "" for builds recorded before workspace ids
    root: str
    builds: int
    current: bool  # the workspace the UI was started in (the default filter)


class WorkspaceList(msgspec.Struct):
    workspaces: list[WorkspaceEntry]


class BuildList(msgspec.Struct):
    builds: list[BuildSummary]
    total: int  # builds matching the filters, before the limit


class BuildDetail(msgspec.Struct):
    build: BuildSummary
    overrides: dict[str, Any]
    dag: Dag


class Output(msgspec.Struct):
    name: str
    digest: str
    codec: str
    size: int
    url: str


class Input(msgspec.Struct):
    """One input of a step: an upstream action's result, or a source file of the workspace."""

    name: str
    digest: str
    producer_key: str | None = None
    producer_label: str | None = None
    source: str | None = None  # workspace-relative path of a source-file input
    outputs: list[Output] = []
    note: str | None = None  # why the producer is not named (a result from before producers were kept)


class StepDetail(msgspec.Struct):
    key: str
    label: str
    rule: str
    code: str
    env: str
    config: Any
    inputs: list[Input]
    outputs: list[Output]
    log_digest: str | None
    started: float
    finished: float
    host: str
    executor: str
    pickled: bool


class RenderedOutput(msgspec.Struct):
    name: str
    digest: str
    codec: str
    size: int
    url: str
    blocks: list[Block]


class StepOutput(msgspec.Struct):
    key: str
    label: str
    outputs: list[RenderedOutput]


class Function(msgspec.Struct):
    name: str
    file: str
    digest: str
    source: str | None  # None when the CAS no longer holds it


class StepCode(msgspec.Struct):
    digest: str
    rule: str
    imports: list[str]
    functions: list[Function]
    available: bool  # False when the code manifest is gone from the CAS


class StepEnv(msgspec.Struct):
    digest: str
    image: str | None
    python: str | None
    packages: dict[str, str]
    available: bool


class LogText(msgspec.Struct):
    digest: str
    text: str
    size: int
    truncated: bool  # only the last MAX_LOG bytes are in ``text``


class HistoryEntry(msgspec.Struct):
    build_id: str
    started: float
    build_status: str
    status: str  # the step's status in that build
    key: str | None
    seconds: float
    causes: list[Cause]  # what differs from the next older entry with another key
    texts: list[str]  # each cause as a phrase, as ``mlbuild why`` prints it


class TargetHistory(msgspec.Struct):
    label: str
    entries: list[HistoryEntry]  # newest first


# -- builds --------------------------------------------------------------------------------


def summarize(record: BuildHead) -> BuildSummary:
    counts: dict[str, int] = {}
    latest = {a.label: a.status for a in record.actions}
    for status in latest.values():
        counts[status] = counts.get(status, 0) + 1
    seconds = record.seconds
    if seconds is None and record.finished is not None:
        seconds = max(0.0, record.finished - record.started)  # an old record: wall-clock times
    return BuildSummary(
        record.id, record.started, record.finished, display_status(record), record.user, record.host,
        record.workspace, record.targets[:MAX_TARGETS], record.argv, record.git_commit, record.git_dirty,
        record.executor, counts, len(record.targets), _patterns(record), record.workspace_id, seconds,
        record.schema,
    )


def _patterns(record: BuildHead) -> list[str]:
    """What the user asked for: the label-like words of the command line, else the targets."""
    asked = [a for a in record.argv[1:] if a.startswith(("//", ":")) and "=" not in a]  # not --set x=y
    return asked[:MAX_TARGETS] if asked else record.targets[:MAX_TARGETS]


def list_builds(
    store: LocalStore, target: str = "", status: str = "", commit: str = "", limit: int = 200, scope: Scope = ALL
) -> BuildList:
    """Recorded builds of ``scope``'s workspace (every one's by default), newest first;
    ``target`` matches a requested or built label (substring), ``commit`` a prefix of the git
    commit, ``status`` the status shown (``abandoned`` included)."""
    matched = []
    for record in builds(store, scope):
        if status and display_status(record) != status:
            continue
        if commit and not (record.git_commit or "").startswith(commit):
            continue
        if target and not any(target in t for t in record.targets) and not any(
            target in a.label for a in record.actions
        ):
            continue
        matched.append(record)
    return BuildList([summarize(r) for r in matched[:limit]], len(matched))


def workspace_scope(value: str | None, default: Scope) -> Scope:
    """The ``workspace`` filter of a request: absent, the server's default; ``all``, every
    workspace; else a workspace id ("" for builds recorded before workspace ids, by root)."""
    if value is None:
        return default
    if value == "all":
        return ALL
    if not re.fullmatch(r"[0-9a-f]{0,32}", value):
        raise BadRequest(f"workspace must be a workspace id or 'all', not {value!r}")
    return Scope(value)


def workspaces(store: LocalStore, current: Scope = ALL) -> WorkspaceList:
    """Every workspace with builds in this cache, the most recently built first."""
    found: dict[str, WorkspaceEntry] = {}
    for record in store.index.list_build_heads():
        wid = record.workspace_id
        entry = found.get(wid or record.workspace)
        if entry is None:
            entry = found[wid or record.workspace] = WorkspaceEntry(
                wid, record.workspace, 0, bool(wid) and wid == current.workspace_id
            )
        entry.builds += 1
    return WorkspaceList(list(found.values()))


def find(store: LocalStore, build_id: str) -> BuildRecord:
    """The build whose id is, or contains once, ``build_id`` (any workspace's: ids are unique)."""
    try:
        return find_build(store, build_id)
    except UserError as exc:
        raise NotFound(str(exc)) from None



def build_detail(store: LocalStore, build_id: str) -> BuildDetail:
    record = find(store, build_id)
    return BuildDetail(summarize(record), record.overrides, build_dag(store.index, record))


# -- steps ---------------------------------------------------------------------------------


def _result(graph: HashGraph, key: str) -> ActionResult:
    result = graph.action(key)
    if result is None:
        raise NotFound(f"no action {key!r} in this cache (it failed, or was collected)")
    return result


def _outputs(result: ActionResult) -> list[Output]:
    return [Output(o.name, o.digest, o.codec, o.size, blob_url(o.digest, _download_name(result, o.name, o.codec)))
            for o in result.outputs]


def _download_name(result: ActionResult, name: str, codec: str) -> str:
    from mlbuild.rules.codecs.registry import VALUE_SUFFIX

    base = result.label.rsplit(":", 1)[-1]
    return f"{base}.{name}" + VALUE_SUFFIX.get(codec, ".tree.msgpack")


def step_detail(store: LocalStore, key: str, build_id: str | None = None) -> StepDetail:
    """One step; its inputs named by the producers build ``build_id`` recorded for it (when
    given), else by those its result recorded when it ran — never by matching digests."""
    graph = HashGraph(store)
    result = _result(graph, key)
    record = find(store, build_id) if build_id else None
    labels = {a.key: a.label for a in record.actions if a.key} if record is not None else {}
    producers = graph.producer_keys(result, record)
    sources = result.sources
    inputs = []
    for name, digest in result.key_spec.inputs.items():
        producer = (producers or {}).get(name)
        upstream = graph.action(producer) if producer else None
        unknown = producers is None and name not in sources
        inputs.append(Input(
            name, digest,
            producer_key=producer,
            producer_label=(labels.get(producer) or (upstream.label if upstream else None)) if producer else None,
            source=None if producer else sources.get(name),
            outputs=_outputs(upstream) if upstream else [],
            note=UNRECORDED if unknown else None,
        ))
    return StepDetail(
        result.key, result.label, result.rule, result.key_spec.code, result.key_spec.env,
        result.key_spec.config, inputs, _outputs(result), result.log_digest, result.started,
        result.finished, result.host, result.executor, result.pickled,
    )


def step_output(store: LocalStore, key: str) -> StepOutput:
    result = _result(HashGraph(store), key)
    rendered = [
        RenderedOutput(o.name, o.digest, o.codec, o.size, out.url, render_artifact(store.cas, o))
        for o, out in zip(result.outputs, _outputs(result), strict=True)
    ]
    return StepOutput(result.key, result.label, rendered)


def step_code(store: LocalStore, key: str) -> StepCode:
    graph = HashGraph(store)
    digest = _result(graph, key).key_spec.code
    manifest = graph.code_manifest(digest)
    if manifest is None:
        return StepCode(digest, "", [], [], False)
    functions = [Function(f.name, f.file, f.source, graph.source_text(f.source)) for f in manifest.functions]
    return StepCode(digest, manifest.rule, manifest.imports, functions, True)


def step_env(store: LocalStore, key: str) -> StepEnv:
    graph = HashGraph(store)
    digest = _result(graph, key).key_spec.env
    manifest = graph.env_manifest(digest)
    if manifest is None:
        return StepEnv(digest, None, None, {}, False)
    return StepEnv(digest, manifest.image, manifest.python, dict(sorted(manifest.packages.items())), True)


def log_text(store: LocalStore, digest: str) -> LogText:
    try:
        data = store.cas.get_bytes(digest)
    except (MissingBlob, CorruptBlob) as exc:
        raise NotFound(f"log {digest} is not readable here: {exc}") from None
    tail = data[-MAX_LOG:]
    if len(data) > MAX_LOG:
        tail = tail[tail.find(b"\n") + 1:]  # the tail starts at a whole line
    return LogText(digest, tail.decode(errors="replace"), len(data), len(data) > MAX_LOG)


# -- targets -------------------------------------------------------------------------------


def target_labels(store: LocalStore, scope: Scope = ALL) -> list[str]:
    """Every label some recorded build (of ``scope``) ran or requested, sorted."""
    labels: set[str] = set()
    for record in builds(store, scope):
        labels.update(record.targets)
        labels.update(a.label for a in record.actions)
    return sorted(labels)


def target_history(store: LocalStore, label: str, scope: Scope = ALL) -> TargetHistory:
    """The target's step in every recorded build of ``scope``, newest first, with what changed
    in its key (each side's inputs followed to the producers its build recorded)."""
    graph = HashGraph(store, scope)
    found: list[tuple[BuildHead, Any]] = []
    for record in graph.builds():
        action = next((a for a in reversed(record.actions) if a.label == label), None)
        if action is not None:
            found.append((record, action))
    if not found:
        raise NotFound(f"{label} is in no recorded build")
    differ = KeyDiffer(graph)
    entries: list[HistoryEntry] = []
    for i, (record, action) in enumerate(found):
        causes: list[Cause] = []
        new = graph.action(action.key) if action.key else None
        # The next older build where this step had another key: what changed since then.
        older = next(((r, a.key) for r, a in found[i + 1:] if a.key and a.key != action.key), None)
        old = graph.action(older[1]) if older else None
        if new is not None and old is not None and older is not None:
            causes = differ.compare(old, new.key_spec, new.sources, graph.upstream(new, graph.build(record.id)),
                                    graph.upstream(old, graph.build(older[0].id)))
        entries.append(HistoryEntry(record.id, record.started, record.status, action.status,
                                    action.key, action.seconds, causes, [cause_text(c) for c in causes]))
    return TargetHistory(label, entries)
