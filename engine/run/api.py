"""``mlbuild.engine.build(settings)``: the one way to run a build, for the CLI and everyone else.

``build`` resolves the settings through the configuration chain, plans the targets, makes the
action factory, the remote session and (only when a step must run) the executor, runs the
build and closes what it opened. ``open_build`` gives the same pieces to a caller that does
more than build (``verify`` re-executes with them; ``show`` reads values from the store).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mlbuild.cache.store import LocalStore
from mlbuild.engine.errors import UserError
from mlbuild.engine.interfaces import (
    Executor,
    ExecutorContext,
    ExecutorOptions,
    RemoteCacheSettings,
)
from mlbuild.engine.keys.actions import ActionFactory
from mlbuild.engine.plan.labels import parse_label
from mlbuild.engine.plan.overrides import check_overrides
from mlbuild.engine.plan.planner import Plan, plan
from mlbuild.engine.plan.workspace import Workspace
from mlbuild.engine.run import provenance
from mlbuild.engine.run.backends import (
    executor_class,
    executor_options,
    image_resolver,
    make_executor,
)
from mlbuild.engine.run.build import Builder, BuildOptions, BuildResult, summary_line
from mlbuild.engine.run.collector import fewer_collections
from mlbuild.engine.run.context import Context
from mlbuild.engine.run.progress import Reporter, make_reporter
from mlbuild.engine.run.settings import BuildSettings, Config, option_settings, resolve_config

__all__ = ["BuildSession", "build", "cache_only", "cached_build", "json_summary", "open_build", "raise_if_not_cached",
           "require_remote"]

NO_REMOTE = ("no remote cache configured: pass --remote-cache URL, set MLBUILD_REMOTE_CACHE, "
             "or set [cache] remote in mlbuild.toml")


class BuildSession:
    """The resolved pieces of one build; made by ``open_build``, closed when it ends."""

    def __init__(self, settings: BuildSettings) -> None:
        self.settings = settings
        ctx = Context(settings.directory)
        self.ws: Workspace = ctx.ws
        self.current_package = ctx.current_package
        self.config: Config = resolve_config(settings, self.ws)
        # The build's id exists before anything runs: the executor is labelled with it.
        self.build_id = provenance.new_build_id()
        self.executor_class = executor_class(self.config.executor)
        self.executor_options: ExecutorOptions = settings.executor_options or executor_options(
            self.executor_class, settings.executor_flags)
        self.config.settings.extend(option_settings(self.executor_options))
        self.store = LocalStore(self.config.cache_dir)
        self.remote: Any = None
        try:
            self.plan: Plan = plan(self.ws, ctx.labels(settings.targets))
            # Every --set checked against the plan and the targets' Config classes before anything runs.
            self.overrides = check_overrides(str(self.ws.root), self.plan.targets, {
                label if label.endswith("...") else str(parse_label(label, self.current_package)): dict(fields)
                for label, fields in settings.overrides.items()
            })
            resolve = None
            if self.executor_class.needs_image or any(t.image for t in self.plan.targets.values()):
                resolve = image_resolver()
            self.factory = ActionFactory(self.ws, self.store, resolve_image=resolve)
            if resolve is not None:
                self.factory.resolve_images(self.plan.targets.values())  # an unknown image fails before anything runs
            if self.config.remote is not None:
                from mlbuild.engine.run.remote_session import open_session

                self.remote = open_session(self.config.remote, self.store, upload=self.config.remote_upload,
                                           jobs=settings.jobs or 8)
        except BaseException:
            self.store.close()
            raise

    def executor_context(self) -> ExecutorContext:
        return ExecutorContext(cas_root=str(self.store.cas.root), workspace=str(self.ws.root),
                               jobs=self.config.jobs, build_id=self.build_id, remote=self.config.remote)

    def make_executor(self) -> Executor:
        """The build's executor; called only when a step must run."""
        return make_executor(self.executor_class, self.executor_context(), self.executor_options)

    def run(self) -> BuildResult:
        """Run the build: hits from the caches, misses on the executor."""
        s = self.settings
        started = time.perf_counter()
        options = BuildOptions(
            jobs=self.config.jobs,
            keep_going=s.keep_going,
            no_cache=s.no_cache,
            overrides=self.overrides,
            materialize=s.materialize,
            argv=list(s.argv),
            execute=s.run_steps,
            record=s.run_steps,
            rerun_of=s.rerun_of,
            name=s.name,
            tags=dict(s.tags),
            timeout=s.timeout,
            strict=self.config.strict,
        )
        # A lookup that runs nothing (show) reports nothing; the caller says what it found.
        reporter = make_reporter(quiet=s.quiet) if s.run_steps else Reporter(stream=io.StringIO(), quiet=True)
        builder = Builder(self.ws, self.store, self.factory, self.make_executor, reporter, options,
                          remote=self.remote, executor_name=self.config.executor, build_id=self.build_id)
        try:
            result = builder.run(self.plan)
        finally:
            reporter.close()
            self._close_remote()
        if self.remote is not None:
            result.remote = self.remote.summary()
        reporter.finish(summary_line(result, time.perf_counter() - started))
        return result

    def _close_remote(self) -> None:
        if self.remote is not None and not getattr(self, "_remote_closed", False):
            self._remote_closed = True
            self.remote.close()

    def close(self) -> None:
        try:
            self._close_remote()
        finally:
            self.store.close()


@contextmanager
def open_build(settings: BuildSettings) -> Iterator[BuildSession]:
    """The pieces of the build ``settings`` asks for, closed when the block ends."""
    session = BuildSession(settings)
    try:
        yield session
    finally:
        session.close()


def build(settings: BuildSettings) -> BuildResult:
    """Build ``settings.targets`` and everything they need; the result of every action.

    With ``settings.run_steps=False`` nothing runs and no build is recorded: every result
    comes from the local or remote cache, or the target fails as "not built"."""
    with fewer_collections(), open_build(settings) as session:
        return session.run()


def cache_only(settings: BuildSettings) -> BuildSettings:
    """``settings`` for a build that takes every result from the caches and runs nothing."""
    import msgspec

    return msgspec.structs.replace(settings, run_steps=False, keep_going=True)


def raise_if_not_cached(result: BuildResult) -> None:
    """A UserError naming each target of a cache-only build that is in neither cache."""
    if result.failures:
        raise UserError("; ".join(
            f"{label} is in neither the local nor the remote cache; build it with `mlbuild build {label}`"
            for label in sorted(result.failures)
        ))


def require_remote(session: BuildSession) -> RemoteCacheSettings:
    """The session's remote cache, or a UserError saying how to configure one."""
    if session.config.remote is None:
        raise UserError(NO_REMOTE)
    return session.config.remote


def cached_build(settings: BuildSettings, *, remote_required: bool = False) -> BuildResult:
    """A build that takes every result from the local or remote cache and runs nothing; a
    UserError naming each target in neither (or, with ``remote_required``, before anything is
    looked up when no remote cache is configured)."""
    with open_build(cache_only(settings)) as session:
        if remote_required:
            require_remote(session)
        result = session.run()
    raise_if_not_cached(result)
    return result


def json_summary(result: BuildResult) -> dict[str, Any]:
    """The one-line JSON summary of a build (``--json``)."""
    return {
        "build_id": result.record.id,
        "status": result.record.status,
        "targets": result.record.targets,
        "actions": result.counts(),
        "remote_hits": result.counts()["remote_hits"],
        "remote": result.remote,
        **({"executor": result.executor} if result.executor else {}),
        "outputs": {
            label: {o.name: o.digest for o in r.outputs}
            for label, r in result.results.items()
            if label in result.record.targets
        },
        "failures": result.failures,
        **({"rerun_of": result.record.rerun_of} if result.record.rerun_of else {}),
    }
