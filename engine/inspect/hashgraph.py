"""Reading the hash graph: action results, the recorded producers of their inputs, build
records, and the manifests and sources the CAS holds under code and environment digests.

Lineage, ``why`` and ``diff`` are all walks over this graph. An edge is what was recorded when
it was known — a build record's ``edges``, else an action result's ``producers`` — never a
digest looked up after the fact: two actions can produce the same bytes. Every read is
memoized for the life of one ``HashGraph``, so a walk over thousands of actions that share a
code or environment digest decodes each manifest once.
"""

from __future__ import annotations

import msgspec

from mlbuild.cache.cas import CorruptBlob, MissingBlob
from mlbuild.cache.records import ActionResult, BuildHead, BuildRecord, CodeManifest, EnvManifest
from mlbuild.cache.store import LocalStore
from mlbuild.engine.inspect.recorded import ALL, Scope, in_scope

__all__ = ["HashGraph"]

_code_dec = msgspec.msgpack.Decoder(CodeManifest)
_env_dec = msgspec.msgpack.Decoder(EnvManifest)


class HashGraph:
    """Memoized reads of one local store's action cache, reverse indexes, CAS and the build
    records of one workspace (``scope``; every workspace's with the default)."""

    def __init__(self, store: LocalStore, scope: Scope = ALL) -> None:
        self.store = store
        self.scope = scope
        self._actions: dict[str, ActionResult | None] = {}
        self._producers: dict[str, list[str]] = {}
        self._code: dict[str, CodeManifest | None] = {}
        self._env: dict[str, EnvManifest | None] = {}
        self._builds: list[BuildHead] | None = None
        self._full: dict[str, BuildRecord | None] = {}
        self._labels: dict[str, list[tuple[float, str]]] | None = None
        self._keys: list[tuple[BuildHead, dict[str, str]]] | None = None
        self._edges: dict[str, dict[str, dict[str, str]]] = {}

    def action(self, key: str) -> ActionResult | None:
        if key not in self._actions:
            self._actions[key] = self.store.index.get_action(key)
        return self._actions[key]

    def producers(self, digest: str) -> list[str]:
        """The keys of every cached action whose output or whole result has ``digest``."""
        if digest not in self._producers:
            # The reverse index outlives deleted action entries; those producers are unknown.
            self._producers[digest] = [k for k in self.store.index.producers_of(digest) if self.action(k) is not None]
        return self._producers[digest]

    def edges(self, record: BuildRecord) -> dict[str, dict[str, str]]:
        """Consumer key -> {input name: producer key}, as ``record`` recorded them."""
        if record.id not in self._edges:
            found: dict[str, dict[str, str]] = {}
            for e in record.edges:
                found.setdefault(e.consumer, {})[e.input] = e.producer
            self._edges[record.id] = found
        return self._edges[record.id]

    def producer_keys(self, result: ActionResult, record: BuildRecord | None = None) -> dict[str, str] | None:
        """Input name -> key of the action whose result that input was: in build ``record`` when
        it recorded the edges, else as the result itself recorded them when it ran. None when
        neither did (both were written before mlbuild recorded producers): not guessed."""
        if record is not None and record.schema >= 2:
            edges = self.edges(record).get(result.key)
            if edges is not None:
                return edges
            if not (result.producers or None) and any(a.key == result.key for a in record.actions):
                return {}  # in this build's graph with no upstream inputs
        return result.producers

    def upstream(self, result: ActionResult, record: BuildRecord | None = None) -> dict[str, str]:
        """Input name -> producer key for the inputs whose producer was recorded."""
        return dict(self.producer_keys(result, record) or {})

    def blob(self, digest: str) -> bytes | None:
        try:
            return self.store.cas.get_bytes(digest)
        except (MissingBlob, CorruptBlob):
            return None

    def code_manifest(self, digest: str) -> CodeManifest | None:
        """What a code digest covers, or None when the CAS no longer holds it."""
        if digest not in self._code:
            raw = self.blob(digest)
            try:
                self._code[digest] = None if raw is None else _code_dec.decode(raw)
            except msgspec.DecodeError:
                self._code[digest] = None
        return self._code[digest]

    def env_manifest(self, digest: str) -> EnvManifest | None:
        """What an environment digest covers, or None when the CAS no longer holds it."""
        if digest not in self._env:
            raw = self.blob(digest)
            try:
                self._env[digest] = None if raw is None else _env_dec.decode(raw)
            except msgspec.DecodeError:
                self._env[digest] = None
        return self._env[digest]

    def source_text(self, digest: str) -> str | None:
        """A function's normalized source, stored in the CAS under its digest."""
        raw = self.blob(digest)
        return None if raw is None else raw.decode(errors="replace")

    def builds(self) -> list[BuildHead]:
        """Every recorded build in scope, newest first, without its graph (``build`` reads one whole)."""
        if self._builds is None:
            self._builds = [r for r in self.store.index.list_build_heads() if in_scope(r, self.scope)]
        return self._builds

    def _build_keys(self) -> list[tuple[BuildHead, dict[str, str]]]:
        """Each build (newest first) with its label -> key map (only steps that succeeded)."""
        if self._keys is None:
            self._keys = [
                (r, {a.label: a.key for a in r.actions if a.key and a.status in ("cached", "remote", "executed")})
                for r in self.builds()
            ]
        return self._keys

    def latest_key(self, label: str, before: float | None = None, other_than: str | None = None) -> tuple[str, str | None] | None:
        """The key of ``label`` in its most recent recorded build in scope (started before
        ``before``, with a key other than ``other_than``) whose result is still cached, and that
        build's id.

        Only when every workspace is in scope, falls back to the most recently finished cached
        result of that label (build id None): results carry no workspace.
        """
        for record, keys in self._build_keys():
            if before is not None and record.started >= before:
                continue
            key = keys.get(label)
            if key and key != other_than and self.action(key) is not None:
                return key, record.id
        if not self.scope.everything:
            return None
        best: tuple[float, str] | None = None
        for finished, key in self._by_label().get(label, []):
            if key != other_than and (before is None or finished < before):
                if best is None or finished > best[0]:
                    best = (finished, key)
        return None if best is None else (best[1], None)

    def build(self, build_id: str) -> BuildRecord | None:
        """The whole record (graph included) of a build in scope, by its exact id."""
        if build_id not in self._full:
            head = next((r for r in self.builds() if r.id == build_id), None)
            record = self.store.index.get_build(build_id) if head is not None else None
            self._full[build_id] = record if record is not None and record.id == build_id else None
        return self._full[build_id]

    def latest_build(self, label: str) -> tuple[BuildRecord, str] | None:
        """The most recent build in scope where ``label`` succeeded (ran or was cached), and its key."""
        for head, keys in self._build_keys():
            key = keys.get(label)
            record = self.build(head.id) if key else None
            if key and record is not None:
                return record, key
        return None

    def _by_label(self) -> dict[str, list[tuple[float, str]]]:
        # One pass over the action cache, only when some label has no recorded build.
        if self._labels is None:
            self._labels = {}
            for result in self.store.index.iter_actions():
                self._labels.setdefault(result.label, []).append((result.finished, result.key))
        return self._labels
