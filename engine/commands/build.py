"""``mlbuild build``: build targets and everything they need."""

from __future__ import annotations

import argparse
import io
import sys
import time
from typing import Any

import msgspec

from mlbuild.engine.commands.common import Context, add_build_options, parse_set
from mlbuild.engine.keys.actions import ActionFactory
from mlbuild.engine.plan.labels import Label
from mlbuild.engine.run.backends import check_executor, executor_class
from mlbuild.engine.run.build import (
    Builder,
    BuildOptions,
    BuildResult,
    cpu_count,
    raise_for_failures,
    summary_line,
)
from mlbuild.engine.run.progress import Reporter, make_reporter


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="+", metavar="TARGET", help="labels or patterns: //pkg:name, //pkg/..., //...")
    add_build_options(p)


def executor_options(args: argparse.Namespace) -> dict[str, Any]:
    """Options a backend may take, by name; backends ignore the ones they don't know."""
    return {k: v for k, v in vars(args).items() if k.startswith(("ray_", "kube_", "docker_")) or k == "keep_cluster"}


def execute(
    ctx: Context,
    labels: list[Label],
    args: argparse.Namespace,
    *,
    no_cache: bool | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    materialize: bool = True,
    run_steps: bool = True,
) -> BuildResult:
    """Plan and run a build of ``labels`` with the command-line options in ``args``.

    With ``run_steps=False`` nothing runs and no build is recorded: every result comes from
    the local or remote cache, or the target fails as "not built".
    """
    from mlbuild.engine.plan.planner import plan

    started = time.perf_counter()
    the_plan = plan(ctx.ws, labels)
    options = BuildOptions(
        jobs=args.jobs or cpu_count(),
        keep_going=args.keep_going,
        no_cache=args.no_cache if no_cache is None else no_cache,
        overrides=parse_set(args.overrides, ctx.current_package) if overrides is None else overrides,
        materialize=materialize,
        argv=["mlbuild", *sys.argv[1:]],
        execute=run_steps,
        record=run_steps,
        timeout=getattr(args, "timeout", None),
        strict=bool(getattr(args, "strict", False)) or ctx.ws.config.build.strict,
    )
    executor_name = args.executor or ctx.ws.config.workspace.executor
    check_executor(executor_name)
    cas_root = str(ctx.store.cas.root)

    def make_executor() -> Any:
        # Imported only when a step must run: a fully cached build never loads a backend.
        cls = executor_class(executor_name)
        return cls(cas_root=cas_root, jobs=options.jobs, workspace=str(ctx.ws.root), build_id=builder.build_id,
                   **executor_options(args))

    resolve_image = None
    if any(t.image for t in the_plan.targets.values()) or executor_name in ("docker", "kuberay"):
        from mlbuild.engine.run.backends import image_resolver

        resolve_image = image_resolver()
    factory = ActionFactory(ctx.ws, ctx.store, resolve_image=resolve_image)
    if resolve_image is not None:
        factory.resolve_images(the_plan.targets.values())  # an unknown image fails before anything runs
    remote = None
    from mlbuild.engine.run.backends import remote_session

    remote = remote_session(args, ctx)
    # A lookup that runs nothing (show) reports nothing; the caller says what it found.
    reporter = make_reporter(quiet=args.quiet) if run_steps else Reporter(stream=io.StringIO(), quiet=True)
    builder = Builder(ctx.ws, ctx.store, factory, make_executor, reporter, options,
                      remote=remote, executor_name=executor_name)
    try:
        result = builder.run(the_plan)
    finally:
        reporter.close()
        if remote is not None:
            remote.close()
    if remote is not None:
        result.remote = remote.summary()
    reporter.finish(summary_line(result, time.perf_counter() - started))
    return result


def json_summary(result: BuildResult) -> dict[str, Any]:
    return {
        "build_id": result.record.id,
        "status": result.record.status,
        "targets": result.record.targets,
        "actions": result.counts(),
        "remote_hits": result.counts()["remote_hits"],
        "remote": result.remote,
        "outputs": {
            label: {o.name: o.digest for o in r.outputs}
            for label, r in result.results.items()
            if label in result.record.targets
        },
        "failures": result.failures,
    }


def run(args: argparse.Namespace) -> int:
    ctx = Context()
    result = execute(ctx, ctx.labels(args.targets), args)
    if args.json:
        sys.stdout.write(msgspec.json.encode(json_summary(result)).decode() + "\n")
    raise_for_failures(result)
    return 0
