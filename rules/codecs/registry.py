"""The codec registry: which encoding a value of a given type gets, found without importing.

A codec turns values of some types into canonical bytes and back. Types are matched by
*name* along the value's MRO (``type(value).__mro__``), so finding the codec for a value
never imports pandas, scipy, skops or torch: a library is imported only by the codec that
stores or reads one of its values. Built-in codecs match ``(top-level package, class name)``
so that a library moving a class between its private modules does not break them; a team's
codecs (``register_codec``) match the exact ``module.qualname`` of their class.

Invariants every codec MUST keep (``mlbuild.testing.check_codec`` checks them):

- the same value gives the same bytes, in any process (no timestamps, ids, dict order);
- its decoder executes no code from the bytes (no pickle, no class named by the bytes unless
  it is imported from the project's own code or a trusted list);
- ``decode(encode(v))`` equals ``v``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Codec", "EncodingError", "codec_for", "codec_named", "register", "register_codec", "suffix_of", "VALUE_SUFFIX"]


class EncodingError(TypeError):
    """A value has no canonical encoding (or bytes cannot be decoded safely)."""


@dataclass(frozen=True)
class Codec:
    """One encoding. ``name`` is stored with every artifact (MUST never change meaning);
    ``types`` are ``"package:ClassName"`` (built-ins) or ``"module.QualName"`` (exact) names
    matched along a value's MRO; ``suffix`` names the materialized file (``x.value.arrow``)."""

    name: str
    types: tuple[str, ...]
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]
    suffix: str = ".bin"
    # The distributions a value of this codec needs, for "pip install" hints.
    requires: tuple[str, ...] = ()
    extra: str | None = None
    builtin: bool = field(default=False, compare=False)


_by_name: dict[str, Codec] = {}
_by_type: dict[str, Codec] = {}
# Codec names the engine itself writes (not through this registry); nobody may take them.
RESERVED = frozenset({"msgpack", "npy", "safetensors", "tree", "pickle"})


def register(codec: Codec) -> Codec:
    """Add ``codec``; a second codec of the same name replaces the first only if it is a
    re-registration of the same types (a module imported twice, e.g. after a code change)."""
    if codec.name in RESERVED or not codec.name or any(c in codec.name for c in "/ \n"):
        raise ValueError(f"codec name {codec.name!r} is reserved or malformed")
    old = _by_name.get(codec.name)
    if old is not None and old.types != codec.types:
        raise ValueError(f"codec name {codec.name!r} is already registered for {', '.join(old.types)}")
    _by_name[codec.name] = codec
    for t in codec.types:
        _by_type[t] = codec
    return codec


def register_codec(
    type_: type,
    encode: Callable[[Any], bytes],
    decode: Callable[[bytes], Any],
    name: str,
    *,
    suffix: str = ".bin",
) -> None:
    """Store values of ``type_`` (and its subclasses) as ``encode(value)``; read them back
    with ``decode(data)``.

    ``name`` is written next to every artifact, so it MUST keep its meaning (bump it, e.g.
    ``"myteam.grid/v2"``-style as ``"myteam.grid.v2"``, when the format changes). ``encode``
    MUST be deterministic and ``decode`` MUST NOT execute code from the bytes: test both with
    ``mlbuild.testing.check_codec``. Call this at import time of a module that the producing
    and the consuming rules import.
    """
    if not isinstance(type_, type):
        raise TypeError(f"register_codec needs a class, got {type_!r}")
    register(Codec(name, (f"{type_.__module__}.{type_.__qualname__}",), encode, decode, suffix))


def _names(cls: type) -> Iterable[str]:
    for k in cls.__mro__:
        mod = getattr(k, "__module__", "") or ""
        qual = getattr(k, "__qualname__", k.__name__)
        yield f"{mod}.{qual}"
        yield f"{mod.split('.', 1)[0]}:{qual}"


def codec_for(value: Any) -> Codec | None:
    """The codec for ``value``'s type (the most derived match), without importing anything."""
    if not _by_type:
        return None
    for n in _names(type(value)):
        codec = _by_type.get(n)
        if codec is not None:
            return codec
    return None


def codec_for_type_name(module: str, qualname: str) -> Codec | None:
    """The codec registered for a class known only by name (the static annotation check)."""
    return _by_type.get(f"{module}.{qualname}") or _by_type.get(f"{module.split('.', 1)[0]}:{qualname}")


def codec_named(name: str) -> Codec:
    codec = _by_name.get(name)
    if codec is None:
        raise EncodingError(
            f"artifact codec {name!r} is not registered in this process: import the module that "
            "calls mlbuild.register_codec for it from the rule that reads it"
        )
    return codec


_BASE_SUFFIX = {"msgpack": ".msgpack", "npy": ".npy", "safetensors": ".safetensors", "pickle": ".pickle"}


def suffix_of(name: str) -> str:
    """The file suffix a materialized value of codec ``name`` gets."""
    if name in _BASE_SUFFIX:
        return _BASE_SUFFIX[name]
    codec = _by_name.get(name)
    return codec.suffix if codec is not None else ".bin"


class _Suffixes(Mapping[str, str]):
    """``codec name -> file suffix`` over the live registry (``tree`` has none)."""

    def __getitem__(self, name: str) -> str:
        if name in _BASE_SUFFIX or name in _by_name:
            return suffix_of(name)
        if name != "tree":
            return ".bin"  # a team codec not registered in this process: still materialized
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter([*_BASE_SUFFIX, *_by_name])

    def __len__(self) -> int:
        return len(_BASE_SUFFIX) + len(_by_name)


VALUE_SUFFIX: Mapping[str, str] = _Suffixes()
