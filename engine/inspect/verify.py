"""Re-executing actions and comparing their outputs bit for bit (``mlbuild verify``).

Two modes:

- **against the record** (default): every action's key is resolved top-down from the cache
  (local, or the team's remote cache when one is given), exactly as a build would, and the
  chosen actions are executed again *with the recorded inputs*. Each re-execution therefore has
  the same key as its recorded result, and a difference is pinned on the one action that
  produced it; an action downstream of a nondeterministic one is still checked.
- **run against run** (``runs >= 2``): nothing is read from the action cache. Run 1 executes
  the whole plan in dependency order; runs 2..N execute the chosen actions again with run 1's
  inputs and are compared with run 1. This catches a nondeterministic step before it is cached.

Verification never writes the action cache (a re-execution that differs must not replace the
recorded result) and never publishes to a remote. Outputs do go into the local CAS, since
downstream actions read their inputs there; it is content addressed, so a re-execution that
matches also restores a recorded blob that had been lost or corrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, Literal, TextIO

import msgspec

from mlbuild.cache.cas import CAS
from mlbuild.cache.intact import ensure_intact
from mlbuild.cache.records import ActionResult, ArtifactRef
from mlbuild.cache.store import LocalStore
from mlbuild.engine.errors import UserError
from mlbuild.engine.inspect.artifact_diff import ArtifactDiff, diff_artifacts, format_diff
from mlbuild.engine.interfaces import ActionOutcome, ActionSpec, Executor
from mlbuild.engine.keys.actions import ActionFactory
from mlbuild.engine.plan.labels import Label
from mlbuild.engine.plan.planner import Plan
from mlbuild.engine.run.scheduler import Scheduler

__all__ = ["ActionCheck", "OutputCheck", "VerifyReport", "Verifier", "compare_outputs", "format_report"]

CheckStatus = Literal["match", "mismatch", "nondeterministic", "failed", "unchecked"]


class OutputCheck(msgspec.Struct, kw_only=True):
    """One output of one action: the digest expected, the digest the re-execution gave."""

    name: str
    codec: str
    expected: str | None
    actual: str | None
    diff: ArtifactDiff | None = None

    @property
    def matches(self) -> bool:
        return self.expected == self.actual


class ActionCheck(msgspec.Struct, kw_only=True):
    """The verdict on one action. ``nondeterministic``: it differs but its rule says it may."""

    label: str
    key: str
    status: CheckStatus
    deterministic: bool = True
    baseline: str = "local cache"  # what it was compared with: local cache, remote cache, run 1
    run: int | None = None  # the run that differed from the baseline
    outputs: list[OutputCheck] = []
    error: str | None = None
    notes: list[str] = []


class VerifyReport(msgspec.Struct, kw_only=True):
    """Everything ``mlbuild verify --json`` prints."""

    targets: list[str]
    runs: int
    deps: bool
    executor: str
    ok: bool = True
    actions: list[ActionCheck] = []

    def counts(self) -> dict[str, int]:
        statuses = [a.status for a in self.actions]
        return {s: statuses.count(s) for s in ("match", "mismatch", "nondeterministic", "failed", "unchecked")}


def compare_outputs(expected: list[ArtifactRef], expected_cas: CAS, actual: list[ArtifactRef], actual_cas: CAS) -> list[OutputCheck]:
    """One OutputCheck per output name of either side, with a diff where the digests differ."""
    old = {r.name: r for r in expected}
    new = {r.name: r for r in actual}
    checks = []
    for name in sorted(set(old) | set(new)):
        o, n = old.get(name), new.get(name)
        either = n if n is not None else o
        check = OutputCheck(
            name=name,
            codec=either.codec if either is not None else "",
            expected=o.digest if o else None,
            actual=n.digest if n else None,
        )
        if o is not None and n is not None and o.digest != n.digest:
            check.diff = diff_artifacts(o, expected_cas, n, actual_cas)
        checks.append(check)
    return checks


def _verdict(checks: list[OutputCheck], deterministic: bool) -> CheckStatus:
    if all(c.matches for c in checks):
        return "match"
    return "mismatch" if deterministic else "nondeterministic"


class Verifier:
    """Verifies the actions of one plan; see the module docstring for the two modes."""

    def __init__(
        self,
        store: LocalStore,
        factory: ActionFactory,
        executor_factory: Callable[[], Executor],
        executor_name: str = "local",
        remote: Any = None,
        stream: TextIO | None = None,
    ) -> None:
        self.store = store
        self.factory = factory
        self.executor_factory = executor_factory
        self.executor_name = executor_name
        self.remote = remote
        self.stream = stream
        self._executor: Executor | None = None

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = self.executor_factory()
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.close()
            self._executor = None

    def _say(self, line: str) -> None:
        if self.stream is not None:
            self.stream.write(line + "\n")
            self.stream.flush()

    # -- scheduling ---------------------------------------------------------------------------

    def _schedule(
        self,
        plan: Plan,
        labels: list[Label],
        prepare: Callable[[Label], ActionSpec | None],
        finish: Callable[[Label, ActionOutcome], None],
        ordered: bool = True,
    ) -> None:
        """Run ``labels`` on the executor, in parallel; with ``ordered``, an action waits for
        those of its direct dependencies that are also in ``labels``. ``prepare`` returning
        None means: nothing to run for this label."""
        chosen = set(labels)
        sched: Scheduler[Label] = Scheduler(
            {label: [d for d in plan.targets[label].deps() if d in chosen] if ordered else [] for label in labels}
        )
        running: dict[Future[ActionOutcome], Label] = {}
        while True:
            for label in sched.take():
                spec = prepare(label)
                if spec is None:
                    sched.done(label)
                else:
                    running[self.executor.submit(spec)] = label
            if not running:
                if sched.has_ready():
                    continue
                return
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                label = running.pop(fut)
                finish(label, fut.result())
                sched.done(label)

    # -- against the record -----------------------------------------------------------------

    def _recorded(self, key: str) -> tuple[ActionResult | None, str]:
        if self.remote is not None:
            hit = self.remote.lookup(key)
            if hit is not None:
                return hit, "remote cache"
        return self.store.index.get_action(key), "local cache"

    def resolve_recorded(self, plan: Plan) -> tuple[dict[Label, ActionSpec], dict[Label, ActionResult], dict[Label, str]]:
        """Every action's spec and recorded result, top-down from the cache; UserError naming
        the target when one was never built with its current code, config and inputs."""
        specs: dict[Label, ActionSpec] = {}
        recorded: dict[Label, ActionResult] = {}
        where: dict[Label, str] = {}
        try:
            for label in plan.order:
                target = plan.targets[label]
                key_spec, info, env = self.factory.key_spec(target, recorded, target.config)
                spec = self.factory.action_spec(target, key_spec, info, env, recorded)
                hit, source = self._recorded(spec.key)
                if hit is None:
                    wanted = " ".join(str(r) for r in plan.requested)
                    raise UserError(
                        f"{label} has no recorded result for its current code, config and inputs "
                        f"(never built, or changed since), so there is nothing to verify against; "
                        f"build it first: mlbuild build {wanted}"
                    )
                specs[label], recorded[label], where[label] = spec, hit, source
        finally:
            self.factory.flush()
        return specs, recorded, where

    def verify_recorded(self, plan: Plan, deps: bool) -> VerifyReport:
        specs, recorded, where = self.resolve_recorded(plan)
        labels = list(plan.order) if deps else [label for label in plan.order if label in plan.requested]
        report = VerifyReport(targets=[str(r) for r in plan.requested], runs=1, deps=deps, executor=self.executor_name)
        checks: dict[Label, ActionCheck] = {}

        def prepare(label: Label) -> ActionSpec | None:
            spec = specs[label]
            check = ActionCheck(
                label=str(label), key=spec.key, status="match", deterministic=spec.options.deterministic, baseline=where[label]
            )
            checks[label] = check
            # A recorded output blob that is corrupt is evicted here; a matching re-execution
            # writes the right bytes back.
            bad = ensure_intact(self.store, recorded[label].outputs, self.remote)
            if bad:
                check.notes.append(
                    f"{len(bad)} recorded output blob(s) were missing or corrupt in the local cache ({', '.join(d[:12] for d in bad)})"
                )
            for inp in spec.inputs:
                lost = ensure_intact(self.store, inp.refs, self.remote)
                if lost:
                    check.status = "unchecked"
                    check.error = (
                        f"input {inp.name!r}: its recorded blobs are missing or corrupt here and were not restored "
                        f"(verify with --deps to re-execute its producer, or rebuild it)"
                    )
                    return None
            self._say(f"verifying {label} (against the {where[label]})")
            return spec

        def finish(label: Label, outcome: ActionOutcome) -> None:
            check = checks[label]
            if outcome.error is not None:
                check.status, check.error = "failed", outcome.error
                return
            check.outputs = compare_outputs(recorded[label].outputs, self.store.cas, outcome.outputs, self.store.cas)
            check.status = _verdict(check.outputs, check.deterministic)
            if check.status != "match":
                check.run = 1
            if check.notes and check.status == "match":
                check.notes.append("the re-execution matched and restored them")

        try:
            self._schedule(plan, labels, prepare, finish)
        finally:
            self.close()
        report.actions = [checks[label] for label in labels]
        report.ok = _ok(report)
        return report

    # -- run against run ----------------------------------------------------------------------

    def verify_runs(self, plan: Plan, deps: bool, runs: int) -> VerifyReport:
        if runs < 2:
            raise UserError("--runs compares runs with each other: give 2 or more")
        report = VerifyReport(targets=[str(r) for r in plan.requested], runs=runs, deps=deps, executor=self.executor_name)
        first: dict[Label, ActionResult] = {}
        specs: dict[Label, ActionSpec] = {}
        checks: dict[Label, ActionCheck] = {}
        compared = list(plan.order) if deps else [label for label in plan.order if label in plan.requested]

        def prepare_first(label: Label) -> ActionSpec | None:
            target = plan.targets[label]
            blocked = [str(d) for d in target.deps() if d not in first]
            if blocked:
                checks[label] = ActionCheck(label=str(label), key="", status="unchecked", error=f"its input {blocked[0]} failed in run 1")
                return None
            key_spec, info, env = self.factory.key_spec(target, first, target.config)
            spec = self.factory.action_spec(target, key_spec, info, env, first)
            specs[label] = spec
            checks[label] = ActionCheck(
                label=str(label), key=spec.key, status="match", deterministic=spec.options.deterministic, baseline="run 1"
            )
            self._say(f"run 1/{runs}: {label}")
            return spec

        def finish_first(label: Label, outcome: ActionOutcome) -> None:
            if outcome.error is not None:
                checks[label].status, checks[label].error = "failed", outcome.error
                return
            spec = specs[label]
            first[label] = ActionResult(
                key=spec.key, label=str(label), rule=spec.key_spec.rule, outputs=outcome.outputs, key_spec=spec.key_spec
            )

        def prepare_again(run: int) -> Callable[[Label], ActionSpec | None]:
            def prepare(label: Label) -> ActionSpec | None:
                if label not in first or checks[label].status != "match":
                    return None  # failed in run 1, or already found to differ
                self._say(f"run {run}/{runs}: {label}")
                return specs[label]

            return prepare

        def finish_again(run: int) -> Callable[[Label, ActionOutcome], None]:
            def finish(label: Label, outcome: ActionOutcome) -> None:
                check = checks[label]
                if outcome.error is not None:
                    check.status, check.error, check.run = "failed", outcome.error, run
                    return
                check.outputs = compare_outputs(first[label].outputs, self.store.cas, outcome.outputs, self.store.cas)
                check.status = _verdict(check.outputs, check.deterministic)
                if check.status != "match":
                    check.run = run

            return finish

        try:
            try:
                self._schedule(plan, list(plan.order), prepare_first, finish_first)
            finally:
                self.factory.flush()
            for run in range(2, runs + 1):
                # Every input comes from run 1, so the actions of a later run are independent.
                self._schedule(plan, compared, prepare_again(run), finish_again(run), ordered=False)
        finally:
            self.close()
        report.actions = [checks[label] for label in compared]
        # A step that failed in run 1 outside the compared set still breaks the verification.
        report.actions += [c for label, c in checks.items() if label not in compared and c.status == "failed"]
        report.ok = _ok(report)
        return report


def _ok(report: VerifyReport) -> bool:
    return all(a.status in ("match", "nondeterministic") for a in report.actions)


# ------------------------------------------------------------------------------- text


def summary_line(report: VerifyReport) -> str:
    c = report.counts()
    against = "run against run" if report.runs > 1 else _baselines(report)
    parts = [f"{c['match']} match"]
    if c["nondeterministic"]:
        parts.append(f"{c['nondeterministic']} nondeterministic (declared)")
    for status in ("mismatch", "failed", "unchecked"):
        if c[status]:
            parts.append(f"{c[status]} {status}")
    runs = f", {report.runs} runs" if report.runs > 1 else ""
    word = "OK" if report.ok else "FAILED"
    return f"{word}: verified {len(report.actions)} actions bit for bit ({against}{runs}): " + ", ".join(parts)


def _baselines(report: VerifyReport) -> str:
    sources = sorted({a.baseline for a in report.actions}) or ["local cache"]
    return "against the " + " and ".join(sources)


def format_report(report: VerifyReport) -> list[str]:
    """Per action that did not simply match: what differs and how; then the summary line."""
    lines: list[str] = []
    for a in report.actions:
        if a.status == "match" and not a.notes:
            continue
        word = {
            "match": "MATCH",
            "mismatch": "MISMATCH",
            "nondeterministic": "NONDETERMINISTIC (declared)",
            "failed": "FAILED",
            "unchecked": "NOT CHECKED",
        }[a.status]
        against = f"run {a.run} vs {a.baseline}" if a.run and a.baseline == "run 1" else f"against the {a.baseline}"
        key = f"key {a.key[:12]}, " if a.key else ""
        lines.append(f"{word} {a.label} ({key}{against})")
        if a.status == "nondeterministic":
            lines.append("  its rule is marked @rule(deterministic=False): reported, not failed")
        for note in a.notes:
            lines.append(f"  note: {note}")
        if a.error:
            lines += ["  " + line for line in a.error.splitlines()[-20:]]
        for o in a.outputs:
            if o.matches:
                continue
            if o.expected is None or o.actual is None:
                lines.append(f"  output {o.name!r} ({o.codec}): " + ("appeared" if o.expected is None else "is no longer produced"))
                continue
            lines.append(f"  output {o.name!r} ({o.codec}): {o.expected[:12]} -> {o.actual[:12]}")
            if o.diff is not None:
                lines += ["    " + line for line in format_diff(o.diff)]
    lines.append(summary_line(report))
    return lines


def print_report(report: VerifyReport, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    for line in format_report(report):
        out.write(line + "\n")
