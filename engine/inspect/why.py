"""``why``: for each action of a target's last build, cached (locally or from the remote) or
rebuilt — and then which part of its key differs from that target's previous key.

The previous key of a label is its key in the most recent earlier build record where it had
a different key (or, when no build record has one, the most recent other cached result of
that label). ``explain_dry_run`` computes the keys the next build would have, top-down from
cached results exactly as the Builder does, and explains the would-be rebuilds the same way
without running anything. ``diff_builds`` compares two recorded builds with the same words.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from mlbuild.cache.digest import canonical_bytes
from mlbuild.cache.records import ActionResult, BuildAction, BuildRecord, KeySpec
from mlbuild.cache.store import LocalStore
from mlbuild.engine.errors import UserError
from mlbuild.engine.inspect.hashgraph import HashGraph
from mlbuild.engine.inspect.keydiff import Cause, KeyDiffer, same_change
from mlbuild.engine.inspect.recorded import find_build
from mlbuild.engine.keys.action_key import action_key, make_key_spec
from mlbuild.engine.keys.actions import ActionFactory
from mlbuild.engine.keys.environment import env_digest
from mlbuild.engine.plan.labels import Label, parse_label
from mlbuild.engine.plan.planner import plan
from mlbuild.engine.plan.workspace import FileInput, Target, Workspace
from mlbuild.engine.run.scheduler import Scheduler

__all__ = [
    "ActionExplanation",
    "BuildDiff",
    "Explanation",
    "TargetDiff",
    "diff_builds",
    "explain_build_action",
    "explain_dry_run",
    "explain_target",
]

Verdict = Literal[
    "cached", "remote", "rebuilt", "failed", "skipped", "interrupted", "not_run", "up_to_date", "would_rebuild"
]


class ActionExplanation(msgspec.Struct, frozen=True):
    """One action: its verdict and, for a (would-be) rebuild, the causes against ``previous_key``.

    ``key`` is None for a skipped action, and in a dry run for an action whose key waits on an
    upstream that would be rebuilt first.
    """

    label: str
    key: str | None
    verdict: Verdict
    causes: list[Cause] = []
    previous_key: str | None = None
    previous_build: str | None = None
    error: str | None = None


class Explanation(msgspec.Struct, frozen=True):
    """A target's build (``build`` None for a dry run), action by action in dependency order."""

    target: str
    build: str | None
    dry_run: bool
    actions: list[ActionExplanation]


class TargetDiff(msgspec.Struct, frozen=True):
    label: str
    status: Literal["same", "changed", "added", "removed"]
    old_key: str | None
    new_key: str | None
    causes: list[Cause] = []


class BuildDiff(msgspec.Struct, frozen=True):
    old: str
    new: str
    targets: list[TargetDiff]


def _explain(graph: HashGraph, differ: KeyDiffer, record: BuildRecord, action: BuildAction) -> ActionExplanation:
    label, key = action.label, action.key
    if action.status in ("cached", "remote"):
        return ActionExplanation(label, key, action.status)
    if action.status in ("skipped", "interrupted", "not_run") or key is None:
        status: Verdict = action.status if action.status in ("interrupted", "not_run") else "skipped"
        because = action.because and (f"{action.because} failed" if action.status == "skipped" else action.because)
        return ActionExplanation(label, key, status, error=action.error or because)
    result = graph.action(key)
    verdict: Verdict = "failed" if action.status == "failed" else "rebuilt"
    previous = graph.latest_key(label, before=record.started)
    if previous is None:
        return ActionExplanation(label, key, verdict, [Cause("new_target")], error=action.error)
    if previous[0] == key:
        # The key alone did not change: the trace of its cached result named what did.
        cause = Cause("traced", name=action.cause) if action.cause else Cause("same_key")
        return ActionExplanation(label, key, verdict, [cause], key, previous[1], action.error)
    # The earlier key that differs is the one that explains a rebuild.
    prev_key, prev_build = previous
    old = graph.action(prev_key)
    if result is None or old is None:
        # A failed action leaves no result, so its KeySpec is not known.
        return ActionExplanation(label, key, verdict, [], prev_key, prev_build, action.error)
    # Each side's inputs are followed to the producers its own build recorded.
    old_record = graph.build(prev_build) if prev_build else None
    causes = differ.compare(
        old, result.key_spec, result.sources, graph.upstream(result, record), graph.upstream(old, old_record)
    )
    return ActionExplanation(label, key, verdict, causes, prev_key, prev_build, action.error)


def _last_build(graph: HashGraph, label: str) -> tuple[BuildRecord, BuildAction]:
    for head in graph.builds():
        for action in reversed(head.actions):
            record = graph.build(head.id) if action.label == label else None
            if record is not None:
                return record, action
    raise UserError(f"{label} has not been built yet (mlbuild build {label})")


def explain_build_action(store: LocalStore, build_id: str, label: str, graph: HashGraph | None = None) -> ActionExplanation:
    """Why action ``label`` of build ``build_id`` (any unique part of an id) was cached or rebuilt."""
    graph = graph or HashGraph(store)
    record, action = _build_action(graph, build_id, label)
    return _explain(graph, KeyDiffer(graph), record, action)


def _build_action(graph: HashGraph, build_id: str, label: str) -> tuple[BuildRecord, BuildAction]:
    record = find_build(graph.store, build_id, graph.scope)
    action = next((a for a in reversed(record.actions) if a.label == label), None)
    if action is None:
        raise UserError(f"build {record.id} has no action {label}")
    return record, action


def explain_target(store: LocalStore, label: str, build_id: str | None = None, graph: HashGraph | None = None) -> Explanation:
    """The last recorded build of ``label`` (or build ``build_id``), action by action over the
    target and its inputs, in dependency order."""
    graph = graph or HashGraph(store)
    record, action = _last_build(graph, label) if build_id is None else _build_action(graph, build_id, label)
    wanted = _closure(graph, record, label, action.key)
    differ = KeyDiffer(graph)
    actions = [
        _explain(graph, differ, record, a)
        for a in record.actions
        if wanted is None or a.label in wanted or a.label == label
    ]
    return Explanation(label, record.id, False, actions)


def _closure(graph: HashGraph, record: BuildRecord, label: str, key: str | None) -> set[str] | None:
    """Labels of ``label`` and everything upstream of it in ``record``: from the build's own
    plan, else from the producers its results recorded (None: not recorded, so every action of
    the build is shown rather than a guessed subset)."""
    if record.plan:
        inputs = {step.label: list(step.inputs.values()) for step in record.plan}
        seen, todo = {label}, [label]
        while todo:
            for up in inputs.get(todo.pop(), []):
                if up not in seen:
                    seen.add(up)
                    todo.append(up)
        return seen
    if key is None or graph.action(key) is None:
        return None
    keys, labels, todo = {key}, set(), [key]
    while todo:
        result = graph.action(todo.pop())
        if result is None:
            continue
        labels.add(result.label)
        ups = graph.producer_keys(result)
        if ups is None:
            return None
        for up in ups.values():
            if up not in keys:
                keys.add(up)
                todo.append(up)
    return labels


def explain_dry_run(ws: Workspace, store: LocalStore, label: str, graph: HashGraph | None = None) -> Explanation:
    """What the next build of ``label`` would rebuild, and why; runs nothing.

    Keys resolve top-down from the local action cache as in the Builder; an action below a
    would-be rebuild has no key yet, and is listed as a rebuild because of that input (a
    rebuilt upstream whose output came out identical would, in fact, leave it cached).
    """
    graph = graph or HashGraph(store)
    differ = KeyDiffer(graph)
    the_plan = plan(ws, [parse_label(label)])
    resolve_image = None
    if any(t.image for t in the_plan.targets.values()):
        from mlbuild.engine.run.backends import image_resolver

        resolve_image = image_resolver()
    factory = ActionFactory(ws, store, resolve_image=resolve_image)
    results: dict[Label, ActionResult] = {}
    pending_roots: dict[str, list[Cause]] = {}
    out: dict[Label, ActionExplanation] = {}
    sched: Scheduler[Label] = Scheduler({lab: the_plan.targets[lab].deps() for lab in the_plan.order})
    while sched.has_ready():
        for lab in sched.take():
            _dry_explain(graph, differ, factory, the_plan.targets[lab], results, pending_roots, out)
            sched.done(lab)
    factory.flush()
    return Explanation(label, None, True, [out[lab] for lab in the_plan.order])


def _dry_explain(
    graph: HashGraph,
    differ: KeyDiffer,
    factory: ActionFactory,
    target: Target,
    results: dict[Label, ActionResult],
    pending_roots: dict[str, list[Cause]],
    out: dict[Label, ActionExplanation],
) -> None:
    """One action of a dry run, once its dependencies are explained: up to date (its key is
    cached, so its result feeds the keys below) or a would-be rebuild and its causes."""
    lab = target.label
    text = str(lab)
    waiting = [d for d in target.deps() if d not in results]
    if not waiting:
        spec, _, _ = factory.key_spec(target, results, target.config)
        key = action_key(spec)
        hit = graph.action(key)
        problem = factory.trace_problem(target, hit) if hit is not None else None
        if hit is not None and problem is None:
            results[lab] = hit
            out[lab] = ActionExplanation(text, key, "up_to_date")
            return
        if problem is not None:
            # Same key, but what its step really loaded or read has changed since.
            previous = graph.latest_key(text)
            out[lab] = ActionExplanation(text, key, "would_rebuild", [Cause("traced", name=problem)], previous[0] if previous else None, previous[1] if previous else None)
            pending_roots[text] = [Cause("traced", name=problem, label=text)]
            return
    else:
        info = factory.rule_info(target)
        factory.check_signature(target, info)
        env = factory.env_manifest(target, info)
        factory.store.cas.put_bytes(canonical_bytes(env))
        known = {n: r for n, r in target.inputs.items() if isinstance(r, FileInput) or r in results}
        partial = msgspec.structs.replace(target, inputs=known)
        spec = make_key_spec(
            rule=target.rule_id,
            code=info.code,
            inputs=factory.input_digests(partial, results),
            config=factory.keyed_config(target, info, target.config),
            env=env_digest(env),
        )
        key = None
    sources = {n: r.path for n, r in target.inputs.items() if isinstance(r, FileInput)}
    ups = {n: results[r].key for n, r in target.inputs.items() if not isinstance(r, FileInput) and r in results}
    causes = _dry_causes(graph, differ, text, key, spec, sources, ups)
    for name, ref in target.inputs.items():
        if not isinstance(ref, FileInput) and ref not in results:
            causes.append(Cause("input", name, change="changed", upstream=str(ref), because=pending_roots.get(str(ref), [])))
    previous = graph.latest_key(text)
    out[lab] = ActionExplanation(text, key, "would_rebuild", causes, previous[0] if previous else None, previous[1] if previous else None)
    pending_roots[text] = _roots_of(text, causes, pending_roots)


def _dry_causes(
    graph: HashGraph, differ: KeyDiffer, label: str, key: str | None, spec: KeySpec, sources: dict[str, str],
    ups: dict[str, str],
) -> list[Cause]:
    previous = graph.latest_key(label)
    if previous is None:
        return [Cause("new_target")]
    old = graph.action(previous[0])
    assert old is not None  # latest_key only returns keys whose result is cached
    if key is not None and key == previous[0]:
        return [Cause("same_key")]
    # Inputs still waiting on a rebuild are explained by the caller, not compared here.
    old_spec = msgspec.structs.replace(old.key_spec, inputs={n: d for n, d in old.key_spec.inputs.items() if n in spec.inputs or key is not None})
    previous_record = graph.build(previous[1]) if previous[1] else None
    old_up = graph.upstream(old, previous_record)
    return differ.compare(msgspec.structs.replace(old, key_spec=old_spec), spec, sources, ups, old_up)


def _roots_of(label: str, causes: list[Cause], pending: dict[str, list[Cause]]) -> list[Cause]:
    found: dict[tuple[str, ...], Cause] = {}
    for c in causes:
        subs = c.because if c.kind == "input" and (c.because or c.upstream in pending) else [msgspec.structs.replace(c, label=label)]
        for r in subs:
            found.setdefault(same_change(r), r)
    return list(found.values())


def diff_builds(store: LocalStore, old_id: str, new_id: str, graph: HashGraph | None = None) -> BuildDiff:
    """Two recorded builds compared target by target: same, changed (and why), added, removed.

    Build ids are any unique part of an id, among the builds of ``graph``'s scope."""
    graph = graph or HashGraph(store)
    old, new = find_build(store, old_id, graph.scope), find_build(store, new_id, graph.scope)
    differ = KeyDiffer(graph)
    a = {x.label: x.key for x in old.actions}
    b = {x.label: x.key for x in new.actions}
    targets: list[TargetDiff] = []
    for label, key in b.items():
        if label not in a:
            targets.append(TargetDiff(label, "added", None, key))
        elif a[label] == key:
            targets.append(TargetDiff(label, "same", key, key))
        else:
            ra, rb = graph.action(a[label] or ""), graph.action(key or "")
            causes = []
            if ra is not None and rb is not None:
                # Each build's inputs followed to the producers that build recorded.
                causes = differ.compare(ra, rb.key_spec, rb.sources, graph.upstream(rb, new), graph.upstream(ra, old))
            targets.append(TargetDiff(label, "changed", a[label], key, causes))
    targets += [TargetDiff(label, "removed", key, None) for label, key in a.items() if label not in b]
    return BuildDiff(old.id, new.id, targets)
