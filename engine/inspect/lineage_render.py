"""Lineage and explanations as text for a terminal, and lineage as a Graphviz DOT graph."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from mlbuild.engine.inspect.keydiff import Cause
from mlbuild.engine.inspect.lineage import Environment, LineageGraph, LineageNode
from mlbuild.engine.inspect.why import BuildDiff, Explanation

__all__ = ["cause_text", "diff_text", "explanation_text", "lineage_dot", "lineage_text"]

# Deeper nodes (a long chain) keep this indentation, so lines stay readable.
MAX_INDENT = 8


def _short(digest: str | None) -> str:
    return (digest or "-")[:12]


def _value(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def env_text(env: Environment) -> str:
    if not env.known:
        return f"{_short(env.digest)} (manifest not in the cache)"
    if env.image:
        return f"image {env.image}"
    packages = ", ".join(f"{name} {version}" for name, version in sorted(env.packages.items()))
    return f"python {env.python}" + (f"; {packages}" if packages else "")


def _node_lines(node: LineageNode, cut: set[str]) -> Iterator[str]:
    pad = "  " * min(node.depth, MAX_INDENT)
    yield f"{pad}{node.label}  [{_short(node.key)}]" + (f"  (depth {node.depth})" if node.depth > MAX_INDENT else "")
    pad += "    "
    yield f"{pad}rule     {node.rule}"
    yield f"{pad}code     {_short(node.code)}  " + (
        ", ".join(f"{f.name} ({f.file})" for f in node.functions) or "(manifest not in the cache)"
    )
    yield f"{pad}config   {_value(node.config)}"
    yield f"{pad}env      {env_text(node.env)}"
    for up in node.upstream:
        more = "  (cut by --depth)" if up.key in cut else ""
        yield f"{pad}input    {up.input} <- {up.label} [{_short(up.key)}] digest {_short(up.digest)}{more}"
    for src in node.sources:
        yield f"{pad}source   {src.input} = {src.path or '(path not recorded)'} digest {_short(src.digest)}"
    for name in node.unknown:
        yield f"{pad}input    {name} <- ? digest {_short(node.inputs.get(name))}"
    if node.note:
        yield f"{pad}note     {node.note}"
    yield from _trace_lines(node, pad)
    for out in node.outputs:
        yield f"{pad}output   {out.name} {_short(out.digest)} ({out.codec}, {out.size} bytes)"


def _trace_lines(node: LineageNode, pad: str) -> Iterator[str]:
    """What the step loaded and read at run time (its trace), when the result has one."""
    trace = node.trace
    if trace is None:
        return
    if trace.files:
        yield f"{pad}loaded   " + ", ".join(trace.files)
    if trace.packages:
        yield f"{pad}imported " + ", ".join(
            f"{d} {v}" + (f" (by {trace.via[d]})" if d in trace.via else "") for d, v in trace.packages.items()
        )
    for name, value in trace.env.items():
        shown = "unset" if value is None else "(secret)" if value.startswith("xxh3:") else value
        yield f"{pad}env var  {name} = {shown}"
    for path in trace.reads:
        yield f"{pad}read     {path} (not a declared input)"


def lineage_text(graph: LineageGraph) -> str:
    cut = set(graph.truncated)
    head = [f"note: {n}" for n in graph.notes] + ([f"as built by build {graph.build}"] if graph.build else [])
    return "\n".join([*head, *(line for node in graph.nodes for line in _node_lines(node, cut))]) + "\n"


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def lineage_dot(graph: LineageGraph) -> str:
    """A ``digraph``: actions are boxes, source files notes, edges point from an input to its user."""
    lines = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="monospace"];']
    for node in graph.nodes:
        label = f"{node.label}\n{node.rule}\n{_short(node.key)}"
        lines.append(f"  {_dot_id('a:' + node.key)} [shape=box, label={_dot_id(label)}];")
        for up in node.upstream:
            lines.append(f"  {_dot_id('a:' + up.key)} -> {_dot_id('a:' + node.key)} [label={_dot_id(up.input)}];")
        for src in node.sources:
            sid = _dot_id("s:" + src.digest)
            lines.append(f"  {sid} [shape=note, label={_dot_id((src.path or '?') + chr(10) + _short(src.digest))}];")
            lines.append(f"  {sid} -> {_dot_id('a:' + node.key)} [label={_dot_id(src.input)}];")
    for key in graph.truncated:
        lines.append(f"  {_dot_id('a:' + key)} [shape=box, style=dashed, label={_dot_id('cut by --depth')}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def cause_text(c: Cause) -> str:
    """One cause as a phrase, e.g. ``config lr: 0.05 -> 0.1``."""
    where = f"{c.label}: " if c.label else ""
    if c.kind == "new_target":
        return where + "new target (no earlier key to compare with)"
    if c.kind == "traced":
        return where + c.name  # e.g. "lib/zoo.py changed (loaded at run time)"
    if c.kind == "same_key":
        return where + "run again with an unchanged key (--no-cache, a lost cache entry, or a non-deterministic upstream)"
    if c.kind == "function":
        return where + f"function {c.name} ({c.file}) {c.change}"
    if c.kind == "imports":
        return where + f"third-party import {c.name} {c.change}"
    if c.kind == "config":
        if c.change == "added":
            return where + f"config {c.name} added: {_value(c.new)}"
        if c.change == "removed":
            return where + f"config {c.name} removed (was {_value(c.old)})"
        return where + f"config {c.name}: {_value(c.old)} -> {_value(c.new)}"
    if c.kind == "source":
        return where + f"source {c.name} ({c.file or 'path not recorded'}) changed: {_short(c.old)} -> {_short(c.new)}"
    if c.kind == "input":
        head = where + f"input {c.name} {c.change}" + (f" ({c.upstream})" if c.upstream else "")
        return head + ("" if not c.because else " because " + "; ".join(cause_text(r) for r in c.because))
    if c.kind == "package":
        if c.change != "changed":
            return where + f"package {c.name} {c.change}" + (f" ({c.new or c.old})")
        return where + f"package {c.name}: {c.old} -> {c.new}"
    if c.kind in ("python", "image", "rule", "schema"):
        return where + f"{c.kind} {c.old} -> {c.new}"
    return where + f"{c.kind} digest {_short(c.old)} -> {_short(c.new)} (its manifest is not in the cache)"


def _diffs(causes: list[Cause]) -> Iterator[str]:
    for c in causes:
        if c.kind == "function" and c.diff:
            yield from ("        " + line for line in c.diff.rstrip("\n").splitlines())


def explanation_text(e: Explanation) -> str:
    head = f"{e.target}: what the next build would do" if e.dry_run else f"{e.target}: build {e.build}"
    lines = [head]
    width = max((len(a.label) for a in e.actions), default=0)
    for a in e.actions:
        verdict = a.verdict.replace("_", " ")
        if a.verdict == "remote":
            verdict = "cached (from the remote cache)"
        elif a.verdict == "cached":
            verdict = "cached (local)"
        lines.append(f"  {a.label.ljust(width)}  {verdict}" + (f": {a.error}" if a.error else ""))
        for c in a.causes:
            lines.append(f"      because {cause_text(c)}")
        lines.extend(_diffs(a.causes))
    return "\n".join(lines) + "\n"


def diff_text(d: BuildDiff) -> str:
    lines = [f"build {d.old} -> build {d.new}"]
    width = max((len(t.label) for t in d.targets), default=0)
    for t in d.targets:
        lines.append(f"  {t.label.ljust(width)}  {t.status}")
        for c in t.causes:
            lines.append(f"      because {cause_text(c)}")
        lines.extend(_diffs(t.causes))
    return "\n".join(lines) + "\n"
