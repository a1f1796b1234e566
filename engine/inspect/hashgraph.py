"""Reading the hash graph: action results, who produced a digest, and the manifests and
sources the CAS holds under code and environment digests.

Lineage, ``why`` and ``diff`` are all walks over this graph; nothing here is a separate
lineage database. Every read is memoized for the life of one ``HashGraph``, so a walk over
thousands of actions that share a code or environment digest decodes each manifest once.
"""

from __future__ import annotations

import msgspec

from mlbuild.cache.cas import CorruptBlob, MissingBlob
from mlbuild.cache.records import ActionResult, BuildRecord, CodeManifest, EnvManifest
from mlbuild.cache.store import LocalStore

__all__ = ["HashGraph"]

_code_dec = msgspec.msgpack.Decoder(CodeManifest)
_env_dec = msgspec.msgpack.Decoder(EnvManifest)


class HashGraph:
    """Memoized reads of one local store's action cache, reverse indexes and CAS."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self._actions: dict[str, ActionResult | None] = {}
        self._producers: dict[str, str | None] = {}
        self._code: dict[str, CodeManifest | None] = {}
        self._env: dict[str, EnvManifest | None] = {}
        self._builds: list[BuildRecord] | None = None
        self._labels: dict[str, list[tuple[float, str]]] | None = None
        self._keys: list[tuple[BuildRecord, dict[str, str]]] | None = None

    def action(self, key: str) -> ActionResult | None:
        if key not in self._actions:
            self._actions[key] = self.store.index.get_action(key)
        return self._actions[key]

    def producer(self, digest: str) -> str | None:
        """The key of the action whose output or whole result has ``digest``; None for a source."""
        if digest not in self._producers:
            key = self.store.index.producer_of(digest)
            # The reverse index outlives a deleted action entry; such a producer is unknown.
            self._producers[digest] = key if key is not None and self.action(key) is not None else None
        return self._producers[digest]

    def producer_like(self, digest: str, label: str) -> str | None:
        """The producer of ``digest``, preferring an action of ``label``.

        The producers index keeps one action per digest, the latest to write it; when two
        targets produced the same bytes, an old input digest may point at the wrong one. Pairing
        an old input with the new input's own target keeps ``why`` comparing like with like.
        """
        key = self.producer(digest)
        if key is None or self._label(key) == label:
            return key
        for _, other in self._by_label().get(label, []):
            result = self.action(other)
            if result is not None and result.result_digest() == digest:
                return other
        return key

    def _label(self, key: str) -> str | None:
        result = self.action(key)
        return None if result is None else result.label

    def upstream(self, result: ActionResult) -> dict[str, str]:
        """Input name -> key of the action that produced that input, for non-source inputs."""
        out = {}
        for name, digest in result.key_spec.inputs.items():
            key = self.producer(digest)
            if key is not None:
                out[name] = key
        return out

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

    def builds(self) -> list[BuildRecord]:
        """Every recorded build, newest first."""
        if self._builds is None:
            self._builds = self.store.index.list_builds()
        return self._builds

    def _build_keys(self) -> list[tuple[BuildRecord, dict[str, str]]]:
        """Each build (newest first) with its label -> key map (failed and skipped left out)."""
        if self._keys is None:
            self._keys = [
                (r, {a.label: a.key for a in r.actions if a.key and a.status not in ("failed", "skipped")})
                for r in self.builds()
            ]
        return self._keys

    def latest_key(self, label: str, before: float | None = None, other_than: str | None = None) -> tuple[str, str | None] | None:
        """The key of ``label`` in its most recent recorded build (started before ``before``,
        with a key other than ``other_than``) whose result is still cached, and that build's id.

        Falls back to the most recently finished cached result of that label (build id None).
        """
        for record, keys in self._build_keys():
            if before is not None and record.started >= before:
                continue
            key = keys.get(label)
            if key and key != other_than and self.action(key) is not None:
                return key, record.id
        best: tuple[float, str] | None = None
        for finished, key in self._by_label().get(label, []):
            if key != other_than and (before is None or finished < before):
                if best is None or finished > best[0]:
                    best = (finished, key)
        return None if best is None else (best[1], None)

    def _by_label(self) -> dict[str, list[tuple[float, str]]]:
        # One pass over the action cache, only when some label has no recorded build.
        if self._labels is None:
            self._labels = {}
            for result in self.store.index.iter_actions():
                self._labels.setdefault(result.label, []).append((result.finished, result.key))
        return self._labels
