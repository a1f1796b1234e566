"""Rebuilding a recorded build from its git commit and comparing every output (``mlbuild reproduce``).

The recorded commit is checked out with ``git worktree add`` into a temporary folder, the
recorded targets are built there with the recorded overrides, with ``--no-cache`` semantics and
a fresh, empty local store (so not one result or blob is reused), and no remote cache. Every
action's outputs are then compared with the recorded ones. The worktree and the temporary store
are removed whatever happens.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlbuild.cache.records import BuildRecord
from mlbuild.cache.store import LocalStore
from mlbuild.engine.errors import UserError
from mlbuild.engine.inspect.verify import ActionCheck, VerifyReport, compare_outputs
from mlbuild.engine.run.api import open_build
from mlbuild.engine.run.settings import BuildSettings, RemoteSettings

__all__ = ["reproduce", "worktree"]


def _git(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(cwd), *argv], capture_output=True, text=True, timeout=120)


@contextmanager
def worktree(repo: Path, commit: str, dest: Path) -> Iterator[Path]:
    """``commit`` of the git repository ``repo`` checked out (detached) at ``dest``; removed after."""
    added = _git(repo, "worktree", "add", "--detach", str(dest), commit)
    if added.returncode != 0:
        raise UserError(f"cannot check out commit {commit} of {repo}: {added.stderr.strip() or added.stdout.strip()}")
    try:
        yield dest
    finally:
        removed = _git(repo, "worktree", "remove", "--force", str(dest))
        if removed.returncode != 0:
            shutil.rmtree(dest, ignore_errors=True)
            _git(repo, "worktree", "prune")


def _checkout_root(record: BuildRecord) -> tuple[Path, Path]:
    """The git top level holding the recorded workspace, and the workspace's path inside it."""
    workspace = Path(record.workspace)
    if not workspace.is_dir():
        raise UserError(f"build {record.id} was made in {workspace}, which no longer exists: no git repository to check out from")
    top = _git(workspace, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise UserError(f"build {record.id}: {workspace} is no longer in a git checkout: {top.stderr.strip()}")
    root = Path(top.stdout.strip())
    return root, workspace.resolve().relative_to(root.resolve())


def reproduce(
    store: LocalStore,
    record: BuildRecord,
    executor_name: str,
    jobs: int | None,
    warn: Callable[[str], None],
    quiet: bool = True,
) -> VerifyReport:
    """Rebuild ``record`` from source on ``executor_name`` and compare with what it recorded."""
    if not record.git_commit:
        raise UserError(
            f"build {record.id} cannot be reproduced from source: it has no git commit recorded (its workspace "
            f"{record.workspace} was not in a git repository when it was built; commit it to git and build again)"
        )
    if record.git_dirty:
        raise UserError(
            f"build {record.id} cannot be reproduced from source: it was built from a tree with uncommitted or "
            f"untracked changes on top of commit {record.git_commit[:12]}, and those changes were not recorded "
            "(commit them and build again)"
        )
    repo, rel = _checkout_root(record)
    report = VerifyReport(targets=list(record.targets), runs=1, deps=True, executor=executor_name)
    with tempfile.TemporaryDirectory(prefix="mlbuild-reproduce-") as tmp:
        with worktree(repo, record.git_commit, Path(tmp) / "src") as src:
            settings = BuildSettings(
                targets=list(record.targets), directory=os.fspath(src / rel), cache_dir=os.fspath(Path(tmp) / "cache"),
                jobs=jobs, executor=executor_name, remote=RemoteSettings(enabled=False),
                overrides=dict(record.overrides), no_cache=True, materialize=False, quiet=quiet,
                argv=["mlbuild", "reproduce", record.id],
            )
            with open_build(settings) as session:
                result = session.run()
                report.actions = _compare(store, session.store, record, result, session.plan, session.factory)
    report.ok = all(a.status in ("match", "nondeterministic") for a in report.actions)
    return report


def _compare(store: LocalStore, fresh: LocalStore, record: BuildRecord, result: Any, the_plan: Any, factory: Any) -> list[ActionCheck]:
    recorded_keys = {a.label: a.key for a in record.actions if a.key and a.status != "failed"}
    baseline = f"build {record.id}"
    checks: list[ActionCheck] = []
    for label in the_plan.order:
        name = str(label)
        deterministic = factory.rule_info(the_plan.targets[label]).options.deterministic
        key = recorded_keys.get(name)
        new = result.results.get(name)
        check = ActionCheck(label=name, key=key or "", status="match", deterministic=deterministic, baseline=baseline)
        checks.append(check)
        if name in result.failures or new is None:
            check.status = "failed"
            check.error = result.failures.get(name, "it did not run: an input failed")
            continue
        old = store.index.get_action(key) if key else None
        if old is None:
            check.status = "unchecked"
            check.error = "the recorded result is no longer in the local cache (collected?), so there is nothing to compare with"
            continue
        if new.key != key:
            changed = [
                part
                for part, a, b in (
                    ("inputs", old.key_spec.inputs, new.key_spec.inputs),
                    ("code", old.key_spec.code, new.key_spec.code),
                    ("config", old.key_spec.config, new.key_spec.config),
                    ("environment", old.key_spec.env, new.key_spec.env),
                )
                if a != b
            ]
            check.notes.append(f"its key differs from the recorded one ({old.key[:12]} -> {new.key[:12]}): its {', '.join(changed)} differ")
        check.outputs = compare_outputs(old.outputs, store.cas, new.outputs, fresh.cas)
        if not all(o.matches for o in check.outputs):
            check.status = "mismatch" if deterministic else "nondeterministic"
            check.run = 1
    return checks
