"""``mlbuild affected --since REF``: the targets whose keys a change since a git ref alters.

A key needs its upstream's output digests, which a checkout that was never built doesn't have.
So this compares *static fingerprints*: everything a key is made of that is known before
anything runs (rule, code digest, config, environment, source-file digests) plus the
fingerprints of the upstream targets. A target whose fingerprint differs between the two
checkouts — or that is new — is affected; so is everything downstream of it, by construction.
The base checkout is a temporary ``git worktree`` of REF, removed afterwards.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

from mlbuild.cache.digest import canonical_bytes, digest_bytes
from mlbuild.cache.store import LocalStore
from mlbuild.engine.errors import UserError
from mlbuild.engine.keys.action_key import canonical_config
from mlbuild.engine.keys.environment import env_digest
from mlbuild.engine.plan.labels import Label
from mlbuild.engine.plan.planner import plan, resolve_patterns
from mlbuild.engine.plan.workspace import FileInput, Workspace


def fingerprints(ws: Workspace, store: LocalStore, patterns: list[str]) -> dict[str, str]:
    """label -> static fingerprint, for the targets ``patterns`` name and their upstreams."""
    from mlbuild.engine.keys.actions import ActionFactory

    the_plan = plan(ws, resolve_patterns(ws, patterns))
    factory = ActionFactory(ws, store)
    prints: dict[Label, str] = {}
    for label in the_plan.order:
        target = the_plan.targets[label]
        info = factory.rule_info(target)
        image = target.image or info.options.image
        # The image reference, not its digest: resolving needs a Docker engine, and a changed
        # reference is what a diff can show.
        env: Any = f"image:{image}" if image else env_digest(factory.host_env.manifest(info.imports))
        inputs: dict[str, str] = {}
        for name, ref in sorted(target.inputs.items()):
            if isinstance(ref, FileInput):
                path = ws.root / ref.path
                inputs[name] = store.stat_cache.digest(path) if path.exists() else "missing"
            else:
                inputs[name] = prints[ref]
        prints[label] = digest_bytes(canonical_bytes(
            [target.rule_id, info.code, canonical_config(target.config, str(label)), env, inputs]
        ))
    factory.flush()
    return {str(k): v for k, v in prints.items()}


def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise UserError(f"git {' '.join(args)}: {proc.stderr.strip() or 'failed'}")
    return proc.stdout.strip()


def affected_since(ws: Workspace, store: LocalStore, ref: str, patterns: list[str]) -> list[str]:
    """Targets (of ``patterns``, with their upstreams) whose fingerprint differs at ``ref``."""
    top = Path(_git(ws.root, "rev-parse", "--show-toplevel")).resolve()
    _git(ws.root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    rel = ws.root.relative_to(top)
    head = fingerprints(ws, store, patterns)
    with tempfile.TemporaryDirectory(prefix="mlbuild-affected-") as tmp:
        base_dir = Path(tmp) / "base"
        _git(top, "worktree", "add", "--detach", "--quiet", str(base_dir), ref)
        try:
            base_root = base_dir / rel
            if not (base_root / "mlbuild.toml").is_file():
                base: dict[str, str] = {}  # the workspace is new since REF: everything is affected
            else:
                base_ws = Workspace(base_root)
                base_patterns = [p for p in patterns if _exists(base_ws, p)]
                base = fingerprints(base_ws, store, base_patterns) if base_patterns else {}
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_dir)], cwd=top,
                           capture_output=True, check=False)
    return [label for label, fp in head.items() if base.get(label) != fp]


def _exists(ws: Workspace, pattern: str) -> bool:
    try:
        resolve_patterns(ws, [pattern])
    except UserError:
        return False
    return True
