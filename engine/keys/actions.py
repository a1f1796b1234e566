"""Turning targets into actions: code digests (memoized by file stat), environment digests,
input digests, and the KeySpec and ActionSpec of each target."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from mlbuild.cache.digest import canonical_bytes
from mlbuild.cache.memo import Memo
from mlbuild.cache.records import ActionResult, EnvManifest, KeySpec, ResultDigests, Trace
from mlbuild.cache.store import LocalStore
from mlbuild.engine.errors import UserError
from mlbuild.engine.interfaces import ActionSpec, InputSpec
from mlbuild.engine.keys.action_key import action_key, canonical_config, make_key_spec
from mlbuild.engine.keys.codehash import MISSING, CodeHasher
from mlbuild.engine.keys.environment import HostEnvironment, env_digest
from mlbuild.engine.keys.trace_check import TraceChecker
from mlbuild.engine.plan.workspace import FileInput, Target, Workspace
from mlbuild.engine.records import RuleInfo
from mlbuild.rules.codecs.static import analyze_return, missing_libraries


def _stat_sig(root: str, rel: str) -> tuple[str, int, int, int]:
    st = os.stat(os.path.join(root, rel))
    return (rel, st.st_size, st.st_mtime_ns, st.st_ino)


def _still(root: str, sig: tuple[str, int, int, int]) -> bool:
    rel = sig[0]
    if sig[1] == MISSING:
        return not os.path.exists(os.path.join(root, rel))
    try:
        return tuple(sig) == _stat_sig(root, rel)
    except OSError:
        return False


def merge_defaults(defaults: Any, given: Any) -> Any:
    """The config with its class's defaults filled in, recursively for nested configs."""
    if not isinstance(defaults, dict) or not isinstance(given, dict):
        return given
    merged = dict(defaults)
    for k, v in given.items():
        merged[k] = merge_defaults(defaults.get(k), v)
    return merged


class ActionFactory:
    """Keys and specs for the targets of one workspace, against one local store."""

    def __init__(
        self,
        ws: Workspace,
        store: LocalStore,
        resolve_image: Callable[[str], str] | None = None,
    ) -> None:
        self.ws = ws
        self.store = store
        self.root = str(ws.root)
        self.hasher = CodeHasher(ws.root)
        self.host_env = HostEnvironment(store.index)
        self.resolve_image = resolve_image
        self._rules: dict[str, RuleInfo] = {}
        self._images: dict[str, str] = {}
        self._rule_memo: Memo[RuleInfo] = Memo(store.index, "rule", RuleInfo)
        self._new_memo: dict[str, RuleInfo] = {}
        self._stored_envs: set[str] = set()
        self.result_digests = ResultDigests()
        self.traces = TraceChecker(ws.root, store.stat_cache, self.host_env)
        self._static: dict[str, frozenset[str]] = {}
        # Per rule (and image): the environment and its digest; per rule and input names: the
        # signature check. Thousands of targets share a few rules; these cost a no-op per target.
        self._envs: dict[tuple[str, str | None], tuple[EnvManifest, str]] = {}
        self._signatures_ok: set[tuple[str, tuple[str, ...]]] = set()
        self._loaded_memo: Memo[list[str]] = Memo(store.index, "loaded", list[str])
        self._new_loaded: dict[str, list[str]] = {}

    def rule_info(self, target: Target) -> RuleInfo:
        rule_id = target.rule_id
        if rule_id in self._rules:
            return self._rules[rule_id]
        memo_key = f"{self.root}:{rule_id}"
        info = self._rule_memo.get(memo_key)
        if info is not None and not all(_still(self.root, f) for f in info.files):
            info = None
        if info is None:
            result = self.hasher.digest(target.rule_file, target.rule_func, str(target.label))
            returns, return_problem = analyze_return(self.ws.root, target.rule_file, target.rule_func)
            for text in result.sources.values():
                self.store.cas.put_bytes(text.encode())
            self.store.cas.put_bytes(canonical_bytes(result.manifest))
            info = RuleInfo(
                files=[_stat_sig(self.root, f) for f in result.files] + [(f, MISSING, MISSING, MISSING) for f in result.looked_up],
                code=result.digest,
                imports=result.manifest.imports,
                options=result.options,
                params=result.params,
                static=result.files,
                config_defaults=result.config_defaults,
                returns=returns,
                return_problem=return_problem,
            )
            self._new_memo[memo_key] = info
        self._rules[rule_id] = info
        return info

    def check_signature(self, target: Target, info: RuleInfo) -> None:
        """A target whose inputs do not match its rule's parameters fails before anything runs."""
        seen = (target.rule_id, tuple(target.inputs))
        if seen in self._signatures_ok:
            return
        # A rule that opted into pickle stores whatever it returns (never shared remotely).
        problem = None if info.options.allow_pickle else info.return_problem or missing_libraries(info.returns)
        if problem:
            raise UserError(f"{target.label}: rule {target.rule_id} {problem}")
        params = dict(info.params)
        for name in target.inputs:
            if name not in params or name in ("config", "out"):
                raise UserError(f"{target.label}: rule {target.rule_id} has no parameter {name!r} for that input")
        for name, has_default in info.params:
            if name not in ("config", "out") and name not in target.inputs and not has_default:
                raise UserError(f"{target.label}: rule {target.rule_id} needs input {name!r}, which the target does not give")
        self._signatures_ok.add(seen)

    def image_digest(self, target: Target, info: RuleInfo) -> str | None:
        ref = target.image or info.options.image
        if ref is None:
            return None
        if ref not in self._images:
            if self.resolve_image is None:
                raise UserError(f"{target.label}: needs image {ref!r} but no image resolver is available")
            self._images[ref] = self.resolve_image(ref)
        return self._images[ref]

    def resolve_images(self, targets: Iterable[Target]) -> None:
        """Resolve every image the targets name now, so that an unknown one fails the build
        before any step runs; the error names the target."""
        for target in targets:
            try:
                self.image_digest(target, self.rule_info(target))
            except UserError as exc:
                message = str(exc)
                raise UserError(message if message.startswith(str(target.label)) else f"{target.label}: {message}") from None

    def env_manifest(self, target: Target, info: RuleInfo) -> EnvManifest:
        image = self.image_digest(target, info)
        if image is not None:
            return EnvManifest(image=image)
        return self.host_env.manifest(info.imports)

    def _env(self, target: Target, info: RuleInfo) -> tuple[EnvManifest, str]:
        """The target's environment and its digest, stored in the CAS the first time (lineage
        and `why` read the manifest back by its digest)."""
        which = (target.rule_id, target.image or info.options.image)
        known = self._envs.get(which)
        if known is None:
            env = self.env_manifest(target, info)
            known = self._envs[which] = (env, env_digest(env))
            if known[1] not in self._stored_envs:
                self.store.cas.put_bytes(canonical_bytes(env))
                self._stored_envs.add(known[1])
        return known

    def input_digests(self, target: Target, results: dict[Any, ActionResult]) -> dict[str, str]:
        digests = {}
        for name, ref in target.inputs.items():
            if isinstance(ref, FileInput):
                path = self.ws.root / ref.path
                if not path.exists():
                    raise UserError(f"{target.label}: input {name!r}: source file {ref.path} does not exist")
                digests[name] = self.store.stat_cache.digest(path)
            else:
                digests[name] = self.result_digests(results[ref])
        return digests

    def key_spec(self, target: Target, results: dict[Any, ActionResult], config: Any) -> tuple[KeySpec, RuleInfo, EnvManifest]:
        info = self.rule_info(target)
        self.check_signature(target, info)
        env, env_key = self._env(target, info)
        spec = make_key_spec(
            rule=target.rule_id,
            code=info.code,
            inputs=self.input_digests(target, results),
            config=self.keyed_config(target, info, config),
            env=env_key,
        )
        return spec, info, env

    def action_spec(
        self, target: Target, key_spec: KeySpec, info: RuleInfo, env: EnvManifest, results: dict[Any, ActionResult],
        key: str | None = None,
    ) -> ActionSpec:
        """The action to run; ``key`` is ``action_key(key_spec)`` when the caller has it already."""
        inputs = []
        for name, ref in target.inputs.items():
            if isinstance(ref, FileInput):
                inputs.append(InputSpec(name=name, path=ref.path))
            else:
                inputs.append(InputSpec(name=name, refs=results[ref].outputs))
        return ActionSpec(
            key=key or action_key(key_spec),
            label=str(target.label),
            rule_file=target.rule_file,
            rule_func=target.rule_func,
            inputs=inputs,
            config=key_spec.config,
            options=info.options,
            key_spec=key_spec,
            workspace=self.root,
            image=env.image,
        )

    def with_sources(self, target: Target, spec: ActionSpec) -> ActionSpec:
        """``spec`` with the project source files its step needs, by content (``ActionSpec.sources``):
        for an executor that ships code to workers sharing no filesystem with this machine.

        Computed only for a step about to run, never while keying (the no-op path): the code
        digest's files come from the memoized ``RuleInfo``, the run-time ones from the trace of
        the target's last run (the ``loaded`` memo) and of a result under this very key whose
        trace no longer held; digests through the stat cache."""
        rels = set(self.rule_info(target).static)
        label_key = f"{self.root}:{spec.label}"
        loaded = self._new_loaded.get(label_key)
        rels.update(loaded if loaded is not None else self._loaded_memo.get(label_key) or [])
        earlier = self.store.index.get_action(spec.key)
        if earlier is not None and earlier.trace is not None:
            rels.update(p for p in earlier.trace.files if not os.path.isabs(p))
        sources: dict[str, str] = {}
        for rel in sorted(rels):
            path = os.path.join(self.root, rel)
            try:
                sources[rel] = self.store.stat_cache.digest(path)
            except OSError:
                continue  # a file an earlier run loaded may be gone since
        return msgspec.structs.replace(spec, sources=sources)

    def remember_loaded(self, label: str, rule_id: str, trace: Trace | None) -> None:
        """Note the workspace files a step's run loaded (its trace) beyond those its code digest
        read, for ``with_sources`` of the target's next run: what a dynamic import needs, which
        no static digest can see. Most steps load nothing more, and cost no write."""
        info = self._rules.get(rule_id)
        if trace is None or info is None:
            return
        static = set(info.static)
        extra = sorted(p for p in trace.files if p not in static and not os.path.isabs(p))
        if extra:
            self._new_loaded[f"{self.root}:{label}"] = extra

    def keyed_config(self, target: Target, info: RuleInfo, config: Any) -> Any:
        """The config as keyed: canonical, with the Config class's defaults applied (read from
        source), so writing a field at its default does not change the key."""
        canonical = canonical_config(config, str(target.label))
        if info.config_defaults:
            canonical = canonical_config(merge_defaults(info.config_defaults, canonical), str(target.label))
        return canonical

    def trace_problem(self, target: Target, result: ActionResult) -> str | None:
        """Why a cached result must not be used now (its trace no longer holds), or None."""
        info = self.rule_info(target)
        static = self._static.get(target.rule_id)
        if static is None:
            static = self._static[target.rule_id] = frozenset(info.static)
        return self.traces.problem(result.trace, static)

    def code_drift(self, rule_id: str, trace: Trace | None) -> str | None:
        """A step must have run the code its key was computed from: each file the static digest
        read, unchanged since planning, must be what the worker compiled. Otherwise its result
        would be stored under a key that does not describe it."""
        info = self._rules.get(rule_id)
        if info is None or trace is None:
            return None
        for rel, size, mtime, ino in info.files:
            ran = trace.files.get(rel)
            if ran is None:
                continue
            try:
                unchanged = _stat_sig(self.root, rel) == (rel, size, mtime, ino)
            except OSError:
                unchanged = False
            if not unchanged or self.traces.source(rel) != ran:
                return f"{rel} changed while the build ran; the result is not stored: build again"
        return None

    def flush(self) -> None:
        """Persist what was learned (stat digests, code digests, package versions)."""
        self.store.stat_cache.flush()
        self.host_env.flush()
        self.traces.flush()
        self._rule_memo.put_many(self._new_memo)
        self._new_memo.clear()
        if self._new_loaded:
            self._loaded_memo.put_many(self._new_loaded)
            self._new_loaded.clear()
