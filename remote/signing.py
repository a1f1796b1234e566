"""Signed action-cache entries: an envelope around an entry's bytes, with an HMAC-SHA256 tag.

A team key (``MLBUILD_CACHE_KEY``) makes writers sign each entry and readers reject entries
that are unsigned or signed with another key, so only holders of the key (CI) can publish
results that others will use. Without a key, entries are accepted as they are: whoever can
write to the remote can make a reader take their outputs for any action key.
"""

from __future__ import annotations

import hashlib
import hmac

import msgspec

__all__ = ["ENVELOPE_SCHEMA", "BadSignature", "Envelope", "open_envelope", "seal"]

ENVELOPE_SCHEMA = 1


class Envelope(msgspec.Struct, frozen=True):
    """What the remote stores under ``ac/<key>``: the entry's bytes and, with a key, their tag."""

    schema: int
    entry: bytes  # msgpack of an ActionResult
    signature: str | None = None  # hex HMAC-SHA256 of ``entry`` under the team key


class BadSignature(Exception):
    """An entry is unsigned, signed with another key, or not an envelope at all."""


_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(Envelope)


def _tag(key: bytes, entry: bytes) -> str:
    return hmac.new(key, entry, hashlib.sha256).hexdigest()


def seal(entry: bytes, key: bytes | None) -> bytes:
    """The envelope's bytes for ``entry``: signed when a key is given, plain otherwise."""
    return _enc.encode(Envelope(ENVELOPE_SCHEMA, entry, _tag(key, entry) if key else None))


def open_envelope(data: bytes, key: bytes | None) -> bytes:
    """The entry inside ``data``; with a key, only if its tag matches (else BadSignature)."""
    try:
        envelope = _dec.decode(data)
    except msgspec.DecodeError as exc:
        raise BadSignature(f"not an mlbuild cache entry ({exc})") from None
    if envelope.schema != ENVELOPE_SCHEMA:
        raise BadSignature(f"unknown entry schema {envelope.schema}")
    if key is None:
        return envelope.entry
    if envelope.signature is None:
        raise BadSignature("the entry is not signed, and MLBUILD_CACHE_KEY requires signed entries")
    if not hmac.compare_digest(envelope.signature, _tag(key, envelope.entry)):
        raise BadSignature("the entry's signature does not match MLBUILD_CACHE_KEY")
    return envelope.entry
