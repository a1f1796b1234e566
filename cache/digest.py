"""Digests: xxh3-128, as 32 hex characters, over bytes, files and canonical records."""

from __future__ import annotations

import os
from typing import Any

import msgspec
import xxhash

# 1 MiB reads stay in the CPU cache between read and hash, which keeps hashing close to read speed.
CHUNK = 1024 * 1024

_canonical = msgspec.msgpack.Encoder(order="deterministic")


def digest_bytes(data: bytes | bytearray | memoryview) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def canonical_bytes(value: Any) -> bytes:
    """The same bytes for the same value in any process, whatever the dict order."""
    return _canonical.encode(value)


def digest_value(value: Any) -> str:
    return digest_bytes(canonical_bytes(value))


def digest_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """Digest and size of a file, read in large chunks without loading it whole."""
    h = xxhash.xxh3_128()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    size = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(view)
            if not n:
                break
            h.update(view[:n])
            size += n
    return h.hexdigest(), size


def is_digest(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)
