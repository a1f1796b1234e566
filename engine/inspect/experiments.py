"""Builds seen as experiments: which builds to compare, and the tables ``metrics`` and ``exp``
print. The command modules parse arguments and print; the choices live here."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from mlbuild.cache.records import BuildHead
from mlbuild.engine.errors import UserError
from mlbuild.engine.inspect.metrics import (
    BuildView,
    Change,
    MetricsReader,
    changes,
    fmt,
    fmt_change,
    natural_key,
    table,
)

OK_STATUSES = ("cached", "remote", "executed")


class Session:
    """The workspace (when run inside one), its store, which builds are in scope, and the
    remote cache (``--remote-cache`` or the configured one) for outputs built elsewhere."""

    def __init__(self, all_workspaces: bool = False, remote_url: str | None = None) -> None:
        from mlbuild.engine.run.context import open_records

        self.store, self.ws, self.package, self.scope = open_records(all_workspaces)
        self.remote: Any = None
        if self.ws is not None:
            from mlbuild.engine.run.remote_session import open_session
            from mlbuild.engine.run.settings import BuildSettings, RemoteSettings, resolve_config

            config = resolve_config(BuildSettings(targets=[], remote=RemoteSettings(url=remote_url, upload=False)), self.ws)
            if config.remote is not None:
                self.remote = open_session(config.remote, self.store, upload=False)

    def labels(self, texts: list[str]) -> list[str]:
        from mlbuild.engine.plan.labels import parse_label

        return [str(parse_label(t, self.package)) for t in texts]

    def builds(self, target: str | None = None, name: str | None = None,
               tags: dict[str, str] | None = None) -> list[BuildHead]:
        from mlbuild.engine.inspect.recorded import builds

        return select(builds(self.store, self.scope), target, name, tags)

    def build(self, build_id: str) -> BuildHead:
        from mlbuild.engine.inspect.recorded import find_build

        return find_build(self.store, build_id, self.scope)

    def close(self) -> None:
        if self.remote is not None:
            self.remote.close()
        self.store.close()


@contextmanager
def opened(all_workspaces: bool = False, remote_url: str | None = None) -> Iterator[tuple[Session, MetricsReader]]:
    """A session and the reader of its builds' params and metrics, closed when the block ends."""
    session = Session(all_workspaces, remote_url)
    try:
        yield session, MetricsReader(session.store, session.remote)
    finally:
        session.close()


def ran(record: BuildHead, label: str) -> bool:
    """The build has a usable result of ``label``."""
    return any(a.label == label and a.key and a.status in OK_STATUSES for a in record.actions)


def cached_view(reader: MetricsReader, labels: list[str], remote_url: str | None) -> BuildView:
    """The metrics of ``labels`` as today's workspace resolves them from the local or remote
    cache, for targets no build recorded here has (built by a teammate or CI); runs nothing."""
    from mlbuild.engine.run.api import cached_build
    from mlbuild.engine.run.settings import BuildSettings, RemoteSettings

    result = cached_build(BuildSettings(targets=labels, remote=RemoteSettings(url=remote_url, upload=False),
                                        materialize=False, quiet=True))
    return BuildView(id="(cache)", started=0.0, status="cached", git_commit=None, git_dirty=None, name=None,
                     tags={}, params={}, targets={label: reader.target_view(result.results[label]) for label in labels})


def ran_labels(record: BuildHead) -> list[str]:
    return [a.label for a in record.actions if a.key and a.status in OK_STATUSES]


def select(
    records: list[BuildHead], target: str | None = None, name: str | None = None, tags: dict[str, str] | None = None
) -> list[BuildHead]:
    """The records (newest first) that have ``target``'s result and the name and tags asked for."""
    out = []
    for r in records:
        if target is not None and not ran(r, target):
            continue
        if name is not None and r.name != name:
            continue
        if tags and any(r.tags.get(k) != v for k, v in tags.items()):
            continue
        out.append(r)
    return out


def latest(builds: list[BuildHead], what: str) -> BuildHead:
    if not builds:
        raise UserError(f"no recorded build of {what} in this workspace: build it first")
    return builds[0]


def parse_tags(items: list[str]) -> dict[str, str]:
    tags = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise UserError(f"bad --tag {item!r}: use --tag KEY=VALUE")
        tags[k] = v
    return tags


# ------------------------------------------------------------------ metrics show


def metrics_rows(view: BuildView) -> list[tuple[str, str, Any]]:
    return [
        (label, name, value)
        for label, t in sorted(view.targets.items(), key=lambda kv: natural_key(kv[0]))
        for name, value in sorted(t.metrics.items(), key=lambda kv: natural_key(kv[0]))
    ]


def show_table(view: BuildView, markdown: bool = False) -> str:
    rows = [[label, name, fmt(value)] for label, name, value in metrics_rows(view)]
    if not rows:
        return f"build {view.id}: no metrics (targets return no numbers and mark no metrics files)"
    return table(["target", "metric", "value"], rows, markdown)


# ------------------------------------------------------------------ metrics diff


class Comparison(msgspec.Struct, kw_only=True):
    old: str
    new: str
    params: list[Change]
    metrics: list[Change]  # names are "//pkg:t metric"


def compare(old: BuildView, new: BuildView, include_same: bool = False) -> Comparison:
    def metric_map(v: BuildView) -> dict[str, Any]:
        return {f"{label} {name}": value for label, t in v.targets.items() for name, value in t.metrics.items()}

    return Comparison(
        old=old.id,
        new=new.id,
        params=changes(old.params, new.params, include_same),
        metrics=changes(metric_map(old), metric_map(new), include_same),
    )


def diff_text(c: Comparison, markdown: bool = False) -> str:
    parts = []
    header_builds = [c.old, c.new]
    if c.params:
        rows = [[p.name, fmt(p.old), fmt(p.new), fmt_change(p)] for p in c.params]
        parts.append(table(["param", *header_builds, "change"], rows, markdown))
    if c.metrics:
        rows = []
        for m in c.metrics:
            label, _, name = m.name.partition(" ")
            rows.append([label, name, fmt(m.old), fmt(m.new), fmt_change(m)])
        parts.append(table(["target", "metric", *header_builds, "change"], rows, markdown))
    if not parts:
        return f"no param or metric differs between {c.old} and {c.new}"
    return "\n\n".join(parts)


# ------------------------------------------------------------------ exp show


class ExpRow(msgspec.Struct, kw_only=True):
    build: str
    started: float
    commit: str | None
    name: str | None
    key: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    builds: list[str]  # every build that produced this same key (newest first)


def exp_rows(reader: MetricsReader, builds: list[BuildHead], target: str) -> list[ExpRow]:
    """One row per distinct key of ``target`` (builds sharing a key are one row, the newest)."""
    rows: dict[str, ExpRow] = {}
    for record in builds:
        view = reader.view(record, [target])
        t = view.targets.get(target)
        if t is None:
            continue
        if t.key in rows:
            rows[t.key].builds.append(record.id)
            continue
        commit = (record.git_commit or "")[:10] + ("+dirty" if record.git_dirty else "") if record.git_commit else None
        rows[t.key] = ExpRow(
            build=record.id, started=record.started, commit=commit, name=record.name, key=t.key,
            params=view.params, metrics=dict(t.metrics), builds=[record.id],
        )
    return list(rows.values())


def varying(rows: list[ExpRow]) -> list[str]:
    """The params whose value is not the same in every row."""
    names = sorted({n for r in rows for n in r.params}, key=natural_key)
    return [n for n in names if len({repr(r.params.get(n)) for r in rows}) > 1]


def sort_rows(rows: list[ExpRow], by: str | None) -> list[ExpRow]:
    if by is None:
        return rows
    desc = not by.startswith("+")
    name = by.lstrip("+-")
    if rows and all(name not in r.metrics and name not in r.params for r in rows):
        known = sorted({n for r in rows for n in (*r.metrics, *r.params)})
        raise UserError(f"--sort {name!r}: no such metric or param (have: {', '.join(known) or 'none'})")

    def value(r: ExpRow) -> float:
        v = r.metrics.get(name, r.params.get(name))
        return float(v) if isinstance(v, int | float) else float("-inf")

    return sorted(rows, key=value, reverse=desc)


def exp_table(rows: list[ExpRow], markdown: bool = False) -> str:
    if not rows:
        return "no builds of this target recorded in this workspace"
    params = varying(rows)
    metrics = sorted({n for r in rows for n in r.metrics}, key=natural_key)
    header = ["build", "time", "commit", "name", *params, *metrics]
    body = []
    for r in rows:
        when = time.strftime("%m-%d %H:%M", time.localtime(r.started))
        body.append([
            r.build, when, r.commit or "-", r.name or "-",
            *(fmt(r.params.get(p)) for p in params),
            *(fmt(r.metrics.get(m)) for m in metrics),
        ])
    return table(header, body, markdown)
