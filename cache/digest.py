"""Digests: xxh3-128, as 32 hex characters, over bytes, files and canonical records."""

from __future__ import annotations

import os
from contextlib import nullcontext
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
    return copy_hashing(path)


def copy_hashing(
    src: str | os.PathLike[str], dest: str | os.PathLike[str] | int | None = None, chunk: int = CHUNK
) -> tuple[str, int]:
    """Read ``src`` once, hashing each chunk and, with ``dest`` (a path, or a file descriptor
    that this closes), writing it there; returns the digest and size of the bytes read.

    The one place a file's bytes are hashed on their way somewhere (into the CAS, out of it
    into ``mlbuild-out/``, from a remote folder), so that nothing is read twice. The caller
    compares the digest with what it expected and removes ``dest`` if it differs.
    """
    h = xxhash.xxh3_128()
    view = memoryview(bytearray(chunk))
    size = 0
    with open(src, "rb", buffering=0) as fin, open(dest, "wb", buffering=0) if dest is not None else nullcontext() as fout:
        while n := fin.readinto(view):
            piece = view[:n]
            h.update(piece)
            size += n
            while fout is not None and piece:
                piece = piece[fout.write(piece) :]  # an unbuffered write may take part of it
    return h.hexdigest(), size


def is_digest(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)
