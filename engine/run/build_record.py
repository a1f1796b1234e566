"""A build's record as the build goes: its plan before anything runs, each action's edges as its
key is resolved, and what became of the steps that never ran.

The record is the build's graph as it was, not as today's ``BUILD.py`` would draw it: ``lineage``,
``why``, ``diff`` and the UI read it and nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from mlbuild.cache.records import (
    BUILD_SCHEMA,
    ActionResult,
    BuildAction,
    BuildRecord,
    Edge,
    PlannedStep,
)
from mlbuild.engine.plan.labels import Label
from mlbuild.engine.plan.planner import Plan
from mlbuild.engine.plan.workspace import FileInput, Workspace
from mlbuild.engine.run import provenance

__all__ = ["add_edges", "close_unfinished", "new_record", "planned_steps", "producer_keys", "workspace_id"]


def workspace_id(ws: Workspace) -> str:
    return provenance.workspace_id(ws.config.workspace.name, ws.root)


def planned_steps(plan: Plan) -> list[PlannedStep]:
    requested = set(plan.requested)
    steps = []
    for label in plan.order:
        target = plan.targets[label]
        inputs = {n: str(r) for n, r in target.inputs.items() if isinstance(r, Label)}
        sources = {n: r.path for n, r in target.inputs.items() if isinstance(r, FileInput)}
        steps.append(PlannedStep(str(label), inputs, sources, label in requested))
    return steps


def new_record(
    ws: Workspace, plan: Plan, started: float, argv: list[str], overrides: dict[str, Any], executor: str,
    *, build_id: str | None = None, rerun_of: str | None = None, name: str | None = None,
    tags: dict[str, str] | None = None,
) -> BuildRecord:
    """The record of a build about to start: who, where, and its whole plan."""
    commit, dirty = provenance.git_state(ws.root)
    return BuildRecord(
        id=build_id or provenance.new_build_id(started),
        rerun_of=rerun_of,
        name=name,
        tags=dict(tags or {}),
        started=started,
        finished=None,
        status="running",
        user=provenance.user(),
        host=provenance.host(),
        workspace=str(ws.root),
        argv=argv,
        targets=[str(label) for label in plan.requested],
        git_commit=commit,
        git_dirty=dirty,
        executor=executor,
        overrides=overrides,
        schema=BUILD_SCHEMA,
        workspace_id=workspace_id(ws),
        pid=os.getpid(),
        process=provenance.process_identity(),
        plan=planned_steps(plan),
    )


def producer_keys(plan: Plan, label: Label, results: Mapping[Label, ActionResult]) -> dict[str, str]:
    """Input name -> key of the action whose result that input of ``label`` is, in this build."""
    return {n: results[r].key for n, r in plan.targets[label].inputs.items() if isinstance(r, Label) and r in results}


def add_edges(record: BuildRecord, key: str, producers: Mapping[str, str]) -> None:
    record.edges.extend(Edge(key, name, producer) for name, producer in sorted(producers.items()))


def close_unfinished(record: BuildRecord, running: Iterable[tuple[str, str]], because: str) -> None:
    """Record the steps a build ended without: those ``running`` (label, key) as interrupted,
    every other planned step without an entry as never run, both ``because``."""
    running = list(running)
    for label, key in running:
        record.actions.append(BuildAction(label=label, key=key, status="interrupted", because=because))
    seen = {a.label for a in record.actions}
    for step in record.plan:
        if step.label not in seen:
            record.actions.append(BuildAction(label=step.label, key=None, status="not_run", because=because))
