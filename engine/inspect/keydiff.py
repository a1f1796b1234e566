"""Why two action keys differ: which function's code, config field, input, package version,
Python version or image digest — read from the two KeySpecs and the manifests in the CAS.

An input that differs because its upstream action's key differs is explained recursively:
its ``because`` lists the *root* causes found upstream (every cause that is not itself an
input change), each distinct change once, naming the nearest action it belongs to. The recursion is iterative and memoized
per (old key, new key) pair, so a change at the bottom of a 10,000-step chain is found once.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

import msgspec

from mlbuild.cache.records import ActionResult, KeySpec
from mlbuild.engine.inspect.hashgraph import HashGraph

__all__ = ["Cause", "CauseKind", "KeyDiffer", "config_changes", "same_change"]

CauseKind = Literal[
    "new_target",  # no earlier key to compare with
    "same_key",  # run again with an unchanged key (--no-cache, a lost cache entry, non-determinism)
    "traced",  # same key, but the result's trace no longer held (``name`` says what changed)
    "schema",  # the key schema version changed
    "rule",  # the target names another rule function
    "function",  # a project function covered by the code digest: changed, added or removed
    "imports",  # a third-party module the code reaches: added or removed
    "code",  # the code digest changed but its manifests are no longer in the CAS
    "config",  # a config field (dotted path): changed, added or removed
    "source",  # a source file or directory input changed
    "input",  # an upstream action's result changed (see ``because``)
    "package",  # a third-party distribution's version: changed, added or removed
    "python",  # the Python version
    "image",  # the container image digest
    "env",  # the environment digest changed but its manifests are no longer in the CAS
]
Change = Literal["changed", "added", "removed"]


class Cause(msgspec.Struct, frozen=True):
    """One part of a key that differs from the previous key.

    ``name`` is the function's qualified name, the config field's dotted path, the input or
    the package name; ``old``/``new`` the values (digests for code, inputs and images);
    ``diff`` a unified diff of a function's normalized source; for ``input``, ``upstream`` is
    the label of the action that produced it and ``because`` that action's root causes.
    ``label`` is the action the cause belongs to (always set inside ``because``).
    """

    kind: CauseKind
    name: str = ""
    label: str = ""
    file: str = ""
    change: Change = "changed"
    old: Any = None
    new: Any = None
    diff: str = ""
    upstream: str = ""
    because: list[Cause] = []


_MISSING = object()


def same_change(c: Cause) -> tuple[str, ...]:
    """Causes with equal keys are one change: a function edited in a helper that 1,000 steps
    share is listed once among root causes (at the nearest action), not 1,000 times."""
    return (c.kind, c.name, c.file, c.change, repr(c.old), repr(c.new))


def config_changes(old: Any, new: Any, prefix: str = "") -> list[Cause]:
    """Config differences as dotted paths; dicts are compared field by field, anything else whole."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[Cause] = []
        for field in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{field}" if prefix else str(field)
            a, b = old.get(field, _MISSING), new.get(field, _MISSING)
            if a is _MISSING:
                out.append(Cause("config", path, change="added", new=b))
            elif b is _MISSING:
                out.append(Cause("config", path, change="removed", old=a))
            elif a != b or type(a) is not type(b):
                out.extend(config_changes(a, b, path))
        return out
    if old == new and type(old) is type(new):
        return []
    return [Cause("config", prefix or "(config)", old=old, new=new)]


def _source_diff(graph: HashGraph, name: str, file: str, old: str, new: str) -> str:
    a, b = graph.source_text(old), graph.source_text(new)
    if a is None or b is None:
        return ""
    lines = difflib.unified_diff(
        a.splitlines(keepends=True), b.splitlines(keepends=True), f"{file}:{name} (before)", f"{file}:{name} (after)"
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


class KeyDiffer:
    """Compares KeySpecs over one hash graph, remembering what it found for each key pair."""

    def __init__(self, graph: HashGraph) -> None:
        self.graph = graph
        self._roots: dict[tuple[str, str], list[Cause]] = {}
        self._code: dict[tuple[str, str], list[Cause]] = {}
        self._env: dict[tuple[str, str], list[Cause]] = {}

    # -- the parts of a key --------------------------------------------------------------

    def code_changes(self, old: str, new: str) -> list[Cause]:
        if old == new:
            return []
        # Thousands of actions of one rule share a code digest pair: diff their sources once.
        if (old, new) not in self._code:
            self._code[(old, new)] = self._code_changes(old, new)
        return self._code[(old, new)]

    def _code_changes(self, old: str, new: str) -> list[Cause]:
        a, b = self.graph.code_manifest(old), self.graph.code_manifest(new)
        if a is None or b is None:
            return [Cause("code", old=old, new=new)]
        fa, fb = {f.name: f for f in a.functions}, {f.name: f for f in b.functions}
        out = []
        for name in sorted(set(fa) | set(fb)):
            x, y = fa.get(name), fb.get(name)
            if x is None and y is not None:
                out.append(Cause("function", name, file=y.file, change="added", new=y.source))
            elif y is None and x is not None:
                out.append(Cause("function", name, file=x.file, change="removed", old=x.source))
            elif x is not None and y is not None and (x.source != y.source or x.file != y.file):
                diff = _source_diff(self.graph, name, y.file, x.source, y.source)
                out.append(Cause("function", name, file=y.file, old=x.source, new=y.source, diff=diff))
        for mod in sorted(set(a.imports) ^ set(b.imports)):
            out.append(Cause("imports", mod, change="added" if mod in b.imports else "removed"))
        return out or [Cause("code", old=old, new=new)]

    def env_changes(self, old: str, new: str) -> list[Cause]:
        if old == new:
            return []
        if (old, new) not in self._env:
            self._env[(old, new)] = self._env_changes(old, new)
        return self._env[(old, new)]

    def _env_changes(self, old: str, new: str) -> list[Cause]:
        a, b = self.graph.env_manifest(old), self.graph.env_manifest(new)
        if a is None or b is None:
            return [Cause("env", old=old, new=new)]
        out = []
        if a.image != b.image:
            out.append(Cause("image", old=a.image, new=b.image))
        if a.python != b.python:
            out.append(Cause("python", old=a.python, new=b.python))
        for pkg in sorted(set(a.packages) | set(b.packages)):
            x, y = a.packages.get(pkg), b.packages.get(pkg)
            if x != y:
                change: Change = "added" if x is None else "removed" if y is None else "changed"
                out.append(Cause("package", pkg, change=change, old=x, new=y))
        return out or [Cause("env", old=old, new=new)]

    def input_change(
        self, name: str, old: str | None, new: str | None, path: str | None, up_old: str | None, up_new: str | None
    ) -> tuple[Cause, tuple[str, str] | None]:
        """The cause for one input, and the upstream key pair whose root causes it needs.

        ``up_old``/``up_new`` are the recorded producers of the input (None: a source file, or
        not recorded); a digest is never looked up to guess one.
        """
        if old is None:
            return Cause("input", name, change="added", new=new), None
        if new is None:
            return Cause("input", name, change="removed", old=old), None
        if up_old is None and up_new is None and path is not None:
            return Cause("source", name, file=path, old=old, new=new), None
        up = self.graph.action(up_new or up_old or "")
        cause = Cause("input", name, old=old, new=new, upstream=up.label if up else "")
        return cause, (up_old, up_new) if up_old is not None and up_new is not None else None

    # -- whole keys ----------------------------------------------------------------------

    def direct(
        self,
        old: KeySpec,
        new: KeySpec,
        sources: dict[str, str] | None = None,
        old_up: dict[str, str] | None = None,
        new_up: dict[str, str] | None = None,
    ) -> tuple[list[Cause], dict[str, tuple[str, str]]]:
        """The causes between two KeySpecs, with input causes not yet given their ``because``,
        and input name -> (old upstream key, new upstream key) for those that need one.
        ``old_up``/``new_up`` map input names to their recorded producers' keys."""
        causes: list[Cause] = []
        if old.schema != new.schema:
            causes.append(Cause("schema", old=old.schema, new=new.schema))
        if old.rule != new.rule:
            causes.append(Cause("rule", old=old.rule, new=new.rule))
        causes += self.code_changes(old.code, new.code)
        causes += config_changes(old.config, new.config)
        pairs: dict[str, tuple[str, str]] = {}
        for name in sorted(set(old.inputs) | set(new.inputs)):
            a, b = old.inputs.get(name), new.inputs.get(name)
            if a != b:
                cause, pair = self.input_change(
                    name, a, b, (sources or {}).get(name), (old_up or {}).get(name), (new_up or {}).get(name)
                )
                causes.append(cause)
                if pair is not None:
                    pairs[name] = pair
        causes += self.env_changes(old.env, new.env)
        return causes, pairs

    def compare(
        self,
        old: ActionResult,
        new: KeySpec,
        sources: dict[str, str] | None = None,
        new_up: dict[str, str] | None = None,
        old_up: dict[str, str] | None = None,
    ) -> list[Cause]:
        """Why ``new`` differs from ``old``'s key, each changed input explained by its root causes.

        ``new_up``/``old_up``: input name -> producer key on each side (default for the old side:
        the producers its result recorded)."""
        if old_up is None:
            old_up = self.graph.upstream(old)
        causes, pairs = self.direct(old.key_spec, new, sources if sources is not None else old.sources, old_up, new_up)
        return [
            msgspec.structs.replace(c, because=self.roots(*pairs[c.name])) if c.kind == "input" and c.name in pairs else c
            for c in causes
        ]

    def roots(self, old_key: str, new_key: str) -> list[Cause]:
        """The root causes (no input changes) that make action ``new_key`` differ from ``old_key``."""
        stack = [(old_key, new_key)]
        pending: dict[tuple[str, str], tuple[list[Cause], dict[str, tuple[str, str]], str]] = {}
        while stack:
            pair = stack[-1]
            if pair in self._roots:
                stack.pop()
                continue
            if pair not in pending:
                a, b = self.graph.action(pair[0]), self.graph.action(pair[1])
                if a is None or b is None:
                    self._roots[pair] = []
                    stack.pop()
                    continue
                if pair[0] == pair[1]:
                    self._roots[pair] = [Cause("same_key", label=b.label)]
                    stack.pop()
                    continue
                causes, ups = self.direct(
                    a.key_spec, b.key_spec, b.sources or a.sources, self.graph.upstream(a), self.graph.upstream(b)
                )
                pending[pair] = (causes, ups, b.label)
            causes, ups, label = pending[pair]
            todo = [p for p in ups.values() if p not in self._roots]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            found: dict[tuple[str, ...], Cause] = {}
            for c in causes:
                if c.kind == "input" and c.name in ups:
                    for r in self._roots[ups[c.name]]:
                        found.setdefault(same_change(r), r)
                else:
                    found.setdefault(same_change(c), msgspec.structs.replace(c, label=label))
            self._roots[pair] = list(found.values())
        return self._roots[(old_key, new_key)]
