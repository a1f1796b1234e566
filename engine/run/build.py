"""The build: resolve keys top-down, take hits from the caches, run misses on an executor in
dependency order, record every result, materialize the requested outputs.

A fully cached build computes keys and reads the action cache, nothing more: no rule module
is imported, no artifact is read or decoded.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any, Protocol

import msgspec

from mlbuild.cache.cas import CorruptBlob, MissingBlob
from mlbuild.cache.intact import ensure_intact
from mlbuild.cache.records import ACTION_SCHEMA, ActionResult, ArtifactRef, BuildAction, BuildRecord
from mlbuild.cache.store import LocalStore
from mlbuild.engine.errors import BuildFailed, UserError
from mlbuild.engine.interfaces import ActionOutcome, Executor
from mlbuild.engine.keys.action_key import action_key
from mlbuild.engine.keys.actions import ActionFactory
from mlbuild.engine.plan.labels import Label
from mlbuild.engine.plan.planner import Plan
from mlbuild.engine.plan.workspace import OUTPUT_DIR, Workspace
from mlbuild.engine.run import build_record
from mlbuild.engine.run.collector import fewer_collections
from mlbuild.engine.run.materialize import Materializer
from mlbuild.engine.run.progress import Reporter
from mlbuild.engine.run.scheduler import Scheduler


class RemoteSessionLike(Protocol):
    """What the build needs of a remote cache session (see ``engine/run/remote_session.py``)."""

    def lookup(self, key: str) -> ActionResult | None: ...

    def ensure_local(self, refs: list[ArtifactRef]) -> bool: ...

    def publish_entry(self, result: ActionResult) -> None: ...

    def publish(self, result: ActionResult) -> None: ...

    def prefetch(self, keys: list[str]) -> None: ...


class BuildOptions(msgspec.Struct, kw_only=True):
    jobs: int = 1
    keep_going: bool = False
    no_cache: bool = False
    overrides: dict[str, dict[str, Any]] = {}  # label -> {dotted field: value}
    materialize: bool = True
    argv: list[str] = []
    execute: bool = True  # False: a miss is reported "not built", nothing runs (mlbuild show)
    record: bool = True  # False: no build record is written
    timeout: float | None = None  # seconds any one step may run (--timeout)
    strict: bool = False  # an undeclared workspace read fails the step (CI); see docs/keys.md
    rerun_of: str | None = None  # the recorded build this one re-runs
    name: str | None = None  # --name: an experiment's name
    tags: dict[str, str] = {}  # --tag K=V


class BuildResult(msgspec.Struct):
    record: BuildRecord
    results: dict[str, ActionResult]
    failures: dict[str, str]
    remote: dict[str, Any] | None = None  # the remote session's summary, when one was used
    executor: dict[str, Any] | None = None  # what the executor moved, when it says (its stats())

    def counts(self) -> dict[str, int]:
        statuses = [a.status for a in self.record.actions]
        return {
            "total": len(statuses),
            "cached": sum(s in ("cached", "remote") for s in statuses),
            "remote_hits": statuses.count("remote"),
            "executed": statuses.count("executed"),
            "failed": statuses.count("failed"),
            "skipped": statuses.count("skipped"),
        }


def apply_overrides(config: Any, fields: dict[str, Any], label: str) -> Any:
    """``epochs=5`` or ``optim.lr=0.1`` applied to a target's (plain data) config."""
    merged: dict[str, Any] = msgspec.to_builtins(config) if config is not None else {}
    if not isinstance(merged, dict):
        raise UserError(f"{label}: --set needs a dict config, but its config is {type(config).__name__}")
    merged = dict(merged)
    for dotted, value in fields.items():
        node = merged
        *parents, last = dotted.split(".")
        for part in parents:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else {}
            node = node[part]
        node[last] = value
    return merged


class Builder:
    def __init__(
        self,
        ws: Workspace,
        store: LocalStore,
        factory: ActionFactory,
        executor_factory: Any,
        reporter: Reporter,
        options: BuildOptions,
        remote: RemoteSessionLike | None = None,
        executor_name: str = "local",
        build_id: str | None = None,
    ) -> None:
        self.ws = ws
        self.store = store
        self.factory = factory
        self.executor_factory = executor_factory
        self.executor_name = executor_name
        self._executor: Executor | None = None
        self.build_id = build_id  # the record's id (made when run() starts if not given)
        self.reporter = reporter
        self.options = options
        self.remote = remote
        self.materializer = Materializer(ws.root / OUTPUT_DIR, store.cas, lambda refs: self.ensure_local(refs, verify=False),
                                        factory.result_digests)

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = self.executor_factory()
        return self._executor

    def run(self, plan: Plan) -> BuildResult:
        clock = time.monotonic()  # durations: one monotonic clock, never a difference of two hosts' times
        record = build_record.new_record(
            self.ws, plan, time.time(), self.options.argv, self.options.overrides, self.executor_name,
            build_id=self.build_id, rerun_of=self.options.rerun_of, name=self.options.name, tags=self.options.tags,
        )
        if self.options.record:
            self.store.index.put_build(record)
        self.build_id = record.id
        state = _BuildState(self, plan, record)
        executor_stats: dict[str, Any] | None = None
        try:
            with fewer_collections():
                state.loop()
            record.status = "failed" if state.failures else "succeeded"
            build_record.close_unfinished(record, [], state.stopped_because())
        except KeyboardInterrupt:
            record.status = "interrupted"
            build_record.close_unfinished(record, state.running_steps(), "the build was interrupted")
            raise
        except BaseException as exc:
            # An executor that could not start (an unreachable cluster, say) ends the build too.
            record.status = "failed"
            build_record.close_unfinished(record, state.running_steps(), f"the build failed: {type(exc).__name__}")
            raise
        finally:
            record.finished = time.time()
            record.seconds = time.monotonic() - clock
            self.factory.flush()
            if state.hits:
                self.store.index.touch(state.hits)
            if self.options.record:
                self.store.index.put_build(record)
                self.store.index.put_edges(record.edges)
            if self._executor is not None:
                stats = getattr(self._executor, "stats", None)
                executor_stats = stats() if callable(stats) else None
                self._executor.close()
        result = BuildResult(record, {str(k): v for k, v in state.results.items()}, state.failures,
                             executor=executor_stats)
        if self.options.materialize:
            # The copies check every digest, so blobs are only fetched there, not re-read.
            self.materializer.materialize([(label, state.results[label]) for label in plan.requested if label in state.results])
        return result

    def ensure_local(self, refs: list[ArtifactRef], verify: bool = True) -> bool:
        """True when every blob the refs need is in the local CAS, fetched from the remote if
        need be (and, with ``verify``, intact): see ``cache/intact.py``."""
        return not ensure_intact(self.store, refs, self.remote, verify=verify)

    def materialized(self, label: Label, result: ActionResult) -> bool:
        """True when ``mlbuild-out/`` already holds exactly this result of ``label``, untouched."""
        return self.materializer.is_current(label, result)


class _BuildState:
    """The event loop of one build."""

    def __init__(self, builder: Builder, plan: Plan, record: BuildRecord) -> None:
        self.b = builder
        self.plan = plan
        self.requested = set(plan.requested)
        self.record = record
        self.results: dict[Label, ActionResult] = {}
        self.failures: dict[str, str] = {}
        # Each target waits on its direct dependencies; the scheduler hands out ready ones.
        self.sched: Scheduler[Label] = Scheduler({label: plan.targets[label].deps() for label in plan.order})
        self.hits: list[str] = []
        self.running: dict[Future[ActionOutcome], tuple[Label, Any, float]] = {}
        self.submitting: tuple[Label, Any] | None = None  # being handed to the executor
        self.keys: dict[Label, tuple[str, Any, Any, Any]] = {}  # key, key spec, rule info, environment
        self.specs: dict[Label, Any] = {}
        self.unfetchable: set[str] = set()  # keys whose cached bytes were found gone: run them
        # Filled by the futures' done-callbacks: waiting costs O(1) per action, where
        # concurrent.futures.wait over every running future costs O(running) per wake-up.
        self.finished: SimpleQueue[Future[ActionOutcome]] = SimpleQueue()
        self.stop = False
        self._last_record_write = 0.0
        self.causes: dict[Label, str] = {}  # why a result under the same key was not used (its trace)

    def loop(self) -> None:
        self.b.reporter.start(len(self.plan.order))
        while True:
            while self.sched.has_ready() and not self.stop:
                # One batch: everything that became ready since the last; its remote lookups
                # start together, in the background, before the first is resolved.
                batch = self.sched.take()
                self._prefetch_remote(batch)
                for label in batch:
                    if self.stop:
                        break
                    self.resolve(label)
            if not self.running:
                break
            for fut in self._finished(timeout=0.5):
                label, spec, started = self.running.pop(fut)
                self.finish(label, spec, fut.result(), started)
            self._maybe_write_record()

    def _finished(self, timeout: float) -> list[Future[ActionOutcome]]:
        """The futures done since the last call: waits up to ``timeout`` for the first."""
        try:
            done = [self.finished.get(timeout=timeout)]
        except Empty:
            return []
        while True:
            try:
                done.append(self.finished.get_nowait())
            except Empty:
                return done

    def _maybe_write_record(self) -> None:
        # Throttled, so a UI can follow a long build without a write per action.
        now = time.monotonic()
        if self.b.options.record and now - self._last_record_write > 0.5:
            self._last_record_write = now
            self.b.store.index.put_build(self.record)

    def _config(self, label: Label) -> Any:
        target = self.plan.targets[label]
        fields = self.b.options.overrides.get(str(label))
        return apply_overrides(target.config, fields, str(label)) if fields else target.config

    def _key(self, label: Label) -> str:
        """The action key of a target whose inputs are all resolved (computed once). A hit
        needs no more than this; the ActionSpec is made only for a step that runs."""
        known = self.keys.get(label)
        if known is None:
            target = self.plan.targets[label]
            key_spec, info, env = self.b.factory.key_spec(target, self.results, self._config(label))
            known = self.keys[label] = (action_key(key_spec), key_spec, info, env)
        return known[0]

    def _spec(self, label: Label) -> Any:
        """The action of a target whose inputs are all resolved (computed once)."""
        if label not in self.specs:
            key = self._key(label)
            _, key_spec, info, env = self.keys[label]
            spec = self.b.factory.action_spec(self.plan.targets[label], key_spec, info, env, self.results, key=key)
            cap = self.b.options.timeout
            if cap and (spec.options.timeout is None or cap < spec.options.timeout):
                # --timeout caps every step (the key is unchanged: a limit changes no output)
                spec = msgspec.structs.replace(spec, options=msgspec.structs.replace(spec.options, timeout=cap))
            self.specs[label] = spec
        return self.specs[label]

    def _prefetch_remote(self, fresh: list[Label]) -> None:
        """Ask the remote, in the background, about the actions that just became ready and that
        the local cache lacks: lookups overlap instead of costing a round trip each."""
        if self.b.remote is None or self.b.options.no_cache:
            return
        keys = [self._key(label) for label in fresh]
        local = self.b.store.index.get_actions(keys)
        self.b.remote.prefetch([k for k in keys if k not in local])

    def resolve(self, label: Label) -> None:
        target = self.plan.targets[label]
        gone = next((dep for dep in target.deps() if dep not in self.results), None)
        if gone is not None:
            # An upstream being resolved again for another target: wait for it too.
            self.reexecute(gone, label)
            return
        key = self._key(label)
        if not self.b.options.no_cache:
            hit = self._verified(label, self.b.store.index.get_action(key))
            if hit is not None and self._lost_request(label, hit):
                # A corrupt blob is a miss: a requested target whose bytes are gone runs again.
                self.b.store.index.delete_action(hit.key)
                self.b.reporter.write(f"{label}: cached outputs are missing or corrupt; rebuilding it")
                hit = None
            status = "cached"
            if hit is None and self.b.remote is not None and key not in self.unfetchable:
                hit = self._verified(label, self.b.remote.lookup(key))
                if hit is not None and self._unfetchable(label, hit):
                    hit = None  # its outputs can't be had intact from the remote: run it here
                if hit is not None:
                    status = "remote"
                    self.b.store.index.put_action(hit)
            if hit is not None:
                self.hits.append(key)
                self.complete(label, hit, status, 0.0)
                return
        spec = self._spec(label)
        # It must run here: its inputs' bytes must be here and intact (unless the executor's
        # workers fetch them from the remote cache themselves: remote/ray_remote_data.py).
        remote_inputs = (self.b.remote is not None and self.b.options.execute
                         and getattr(self.b.executor, "outputs_remote", False))
        for dep in [] if remote_inputs else target.deps():
            if not self.b.ensure_local(self.results[dep].outputs):
                if self.results[dep].key in self.unfetchable:
                    # Run again in this build and its bytes are still not here: running it
                    # once more would loop.
                    error = f"the outputs of {dep} are not in the local cache, even after running it again"
                    self.fail(label, spec.key, ActionOutcome(key=spec.key, error=error, error_kind="infra"), 0.0)
                    return
                self.reexecute(dep, label)
                return
        if not self.b.options.execute:
            outcome = ActionOutcome(key=spec.key, error="not built, or out of date: build it first", error_kind="infra")
            self.fail(label, spec.key, outcome, 0.0)
            return
        self.submit(label, spec)

    def _verified(self, label: Label, hit: ActionResult | None) -> ActionResult | None:
        """A cached result is a hit only while its trace holds: what its step really loaded and
        read (project files, package versions, variables, undeclared files) is unchanged."""
        if hit is None:
            return None
        problem = self.b.factory.trace_problem(self.plan.targets[label], hit)
        if problem is None:
            return hit
        self.causes[label] = problem
        return None

    def _lost_request(self, label: Label, hit: ActionResult) -> bool:
        """A local hit on a target to materialize whose outputs are not already in mlbuild-out/
        is taken only if its blobs are intact (or can be fetched intact)."""
        wanted = label in self.requested and self.b.options.materialize
        return wanted and not self.b.materialized(label, hit) and not self.b.ensure_local(hit.outputs)

    def _unfetchable(self, label: Label, hit: ActionResult) -> bool:
        """A remote hit on a target to materialize is taken only if its outputs arrive intact;
        other hits are taken without their bytes ("build without the bytes")."""
        wanted = label in self.requested and self.b.options.materialize
        return wanted and not self.b.ensure_local(hit.outputs)

    def submit(self, label: Label, spec: Any) -> None:
        self.b.reporter.action_started(str(label))
        # An interrupt that lands inside submit (the step may already be running) still finds it.
        if getattr(self.b.executor, "outputs_remote", False):
            # Its workers share no filesystem with this machine: they get exactly the project
            # files its code covers, by content (remote/ray_remote_data.py).
            spec = self.b.factory.with_sources(self.plan.targets[label], spec)
        self.submitting = (label, spec)
        fut = self.b.executor.submit(spec)
        self.running[fut] = (label, spec, time.monotonic())
        self.submitting = None
        fut.add_done_callback(self.finished.put)

    def reexecute(self, dep: Label, waiting: Label) -> None:
        """A cached upstream's blobs are gone or corrupt: forget that entry and resolve it again
        (from the remote, or by running it); ``waiting`` is resolved again once it is done."""
        # Its key depends on what the upstream gives this time.
        self.keys.pop(waiting, None)
        self.specs.pop(waiting, None)
        if not self.sched.wait_for(waiting, dep):
            return  # already being resolved again for another target
        old = self.results.pop(dep)
        self.b.store.index.delete_action(old.key)
        # Its bytes could not be had, locally or from the remote: the remote's entry is not
        # asked for again in this build (an entry whose blobs are gone would loop), it runs.
        self.unfetchable.add(old.key)
        came_from = next((a.status for a in self.record.actions if a.label == str(dep)), "cached")
        where = " on the remote cache" if came_from == "remote" else ""
        self.b.reporter.write(f"{dep}: cached outputs are missing or corrupt{where}; rebuilding it")
        self.record.actions = [a for a in self.record.actions if a.label != str(dep)]
        self.b.reporter.done -= 1

    def finish(self, label: Label, spec: Any, outcome: ActionOutcome, started: float) -> None:
        seconds = time.monotonic() - started
        for note in outcome.notes:
            self.b.reporter.write(f"{label}: {note}")
        if outcome.lost_inputs and outcome.error is not None and self._rerun_producers(label, outcome.lost_inputs):
            return
        if outcome.error is None:
            outcome = self._check_trace(label, spec, outcome)
        if outcome.error is not None:
            self.fail(label, spec.key, outcome, seconds)
            return
        result = ActionResult(
            key=spec.key,
            label=str(label),
            rule=spec.key_spec.rule,
            outputs=outcome.outputs,
            key_spec=spec.key_spec,
            log_digest=outcome.log_digest,
            started=outcome.started,
            finished=outcome.finished,
            host=outcome.host,
            executor=self.b.executor_name,
            pickled=outcome.pickled,
            sources={i.name: i.path for i in spec.inputs if i.path is not None},
            producers=build_record.producer_keys(self.plan, label, self.results),
            seconds=outcome.seconds,
            trace=outcome.trace,
            schema=ACTION_SCHEMA,
            metric_files=list(spec.options.metrics),
            plot_files=list(spec.options.plots),
        )
        self.b.store.index.put_action(result)
        self.b.factory.remember_loaded(str(label), spec.key_spec.rule, outcome.trace)
        if self.b.remote is not None:
            if getattr(self.b.executor, "outputs_remote", False):
                self.b.remote.publish_entry(result)  # its worker pushed the blobs already
            else:
                self.b.remote.publish(result)
        self.complete(label, result, "executed", seconds)

    def _rerun_producers(self, label: Label, lost: list[str]) -> bool:
        """The executor found inputs of ``label`` whose bytes are gone, locally and on the remote
        (its workers fetch inputs there): resolve their producers again, as ``resolve`` does for
        bytes found gone before submitting, then ``label``. False (the step fails) when a
        producer already ran again in this build: its bytes vanished twice."""
        gone = set(lost)
        producers = [dep for dep in self.plan.targets[label].deps()
                     if dep in self.results and any(ref.digest in gone for ref in self.results[dep].outputs)]
        if not producers or any(self.results[dep].key in self.unfetchable for dep in producers):
            return False
        self.b.reporter.running.pop(str(label), None)
        for dep in producers:
            self.reexecute(dep, label)
        return True

    def _check_trace(self, label: Label, spec: Any, outcome: ActionOutcome) -> ActionOutcome:
        """Before a result is stored: it must come from the code its key describes; undeclared
        reads are warned about (or, with ``strict``, fail the step)."""
        trace = outcome.trace
        if trace is None:
            return msgspec.structs.replace(outcome, error="the executor returned no trace; not stored", error_kind="infra")
        drift = self.b.factory.code_drift(spec.key_spec.rule, trace)
        if drift is not None:
            return msgspec.structs.replace(outcome, error=drift, error_kind="infra")
        if trace.reads:
            files = ", ".join(trace.reads)
            if self.b.options.strict:
                message = f"reads {files}, which it does not declare as inputs (strict: declare them with File(...))"
                return msgspec.structs.replace(outcome, error=message, error_kind="input")
            self.b.reporter.write(f"warning: {label} reads {files}, not declared as inputs (a change still rebuilds it)")
        if trace.env:
            self.b.reporter.write(f"warning: {label} reads environment variable(s) {', '.join(trace.env)} (a change rebuilds it)")
        return outcome

    def complete(self, label: Label, result: ActionResult, status: Any, seconds: float) -> None:
        build_record.add_edges(self.record, result.key, build_record.producer_keys(self.plan, label, self.results))
        self.results[label] = result
        name = str(label)
        self.record.actions.append(
            BuildAction(
                label=name,
                key=result.key,
                status=status,
                seconds=seconds,
                log_digest=result.log_digest,
                cause=self.causes.get(label),
            )
        )
        self.b.reporter.action_finished(name, status, seconds)
        self.sched.done(label)

    def fail(self, label: Label, key: str, outcome: ActionOutcome, seconds: float) -> None:
        message = outcome.error or "failed"
        log = self._log_tail(outcome.log_digest)
        text = message + (f"\n--- output of the step (last lines) ---\n{log}" if log else "")
        # Imported here: only a failure needs the running UI's address.
        from mlbuild.engine.ui.state import step_link

        link = step_link(self.b.store.root, self.record.id, key)
        if link:
            text += f"\nsee {link}"
        self.failures[str(label)] = message
        self.record.actions.append(
            BuildAction(label=str(label), key=key, status="failed", seconds=seconds, error=message, log_digest=outcome.log_digest)
        )
        self.b.reporter.action_finished(str(label), "failed", seconds)
        self.b.reporter.action_failed(str(label), text)
        # Everything downstream is skipped; independent targets go on only with --keep-going.
        for skipped in self.sched.fail(label):
            self.record.actions.append(BuildAction(label=str(skipped), key=None, status="skipped", because=str(label)))
        if not self.b.options.keep_going:
            self.stop = True

    def running_steps(self) -> list[tuple[str, str]]:
        """(label, key) of every step submitted and not finished."""
        steps = [(str(label), spec.key) for label, spec, _ in self.running.values()]
        if self.submitting is not None and all(label != str(self.submitting[0]) for label, _ in steps):
            steps.append((str(self.submitting[0]), self.submitting[1].key))
        return steps

    def stopped_because(self) -> str:
        """Why steps a finished build has no entry for never ran (a failure without --keep-going)."""
        failed = [a.label for a in self.record.actions if a.status == "failed"]
        return f"the build stopped after {failed[0]} failed (no --keep-going)" if failed else "the build ended before it"

    def _log_tail(self, digest: str | None, lines: int = 30) -> str:
        if not digest:
            return ""
        try:
            text = self.b.store.cas.get_bytes(digest).decode(errors="replace")
        except (CorruptBlob, MissingBlob):
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


def summary_line(result: BuildResult, seconds: float) -> str:
    c = result.counts()
    parts = [f"{c['total']} actions", f"{c['cached']} cached"]
    if c["remote_hits"]:
        parts.append(f"{c['remote_hits']} from the remote cache")
    parts += [f"{c['executed']} executed", f"{c['failed']} failed"]
    if c["skipped"]:
        parts.append(f"{c['skipped']} skipped")
    not_run = sum(a.status in ("not_run", "interrupted") for a in result.record.actions)
    if not_run:
        parts.append(f"{not_run} not run")
    word = "FAILED" if result.failures else "OK"
    line = f"{word}: build {result.record.id}: " + ", ".join(parts) + f" in {seconds:.2f}s"
    line += remote_summary(result.remote) if result.remote else ""
    return line + (executor_summary(result.executor) if result.executor else "")


def executor_summary(stats: dict[str, Any]) -> str:
    """``; ray (remote data): client 3.1 kB up (12 blobs), workers 9.0 kB down, 4.2 kB up``."""
    if "client_bytes_up" not in stats:
        return ""
    return (f"; {stats.get('name', 'executor')} ({stats.get('data', '')} data): client "
            f"{_bytes(stats['client_bytes_up'])} up ({stats.get('client_blobs_up', 0)} blobs), workers "
            f"{_bytes(stats.get('worker_bytes_down', 0))} down, {_bytes(stats.get('worker_bytes_up', 0))} up")


def remote_summary(remote: dict[str, Any]) -> str:
    """``; remote s3://…: available, 2.1 MB down, 0 B up`` for the summary line."""
    state = remote.get("state", "unused")
    text = {"unused": "not contacted", "available": "available"}.get(state, "UNAVAILABLE")
    if state == "unavailable" and remote.get("reason"):
        text += f" ({remote['reason']})"
    if state != "unused":
        text += f", {_bytes(remote.get('bytes_down', 0))} down, {_bytes(remote.get('bytes_up', 0))} up"
    return f"; remote {remote.get('url', '')}: {text}"


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def raise_for_failures(result: BuildResult) -> None:
    if result.failures:
        names = ", ".join(sorted(result.failures))
        raise BuildFailed(f"build failed: {names}")


def output_dir(ws: Workspace, label: Label) -> Path:
    return ws.root / OUTPUT_DIR / label.package
