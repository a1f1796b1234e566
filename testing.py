"""Checks for a team's own codecs (``mlbuild.register_codec``), the same ones mlbuild's own
codecs are tested with.

    from mlbuild.testing import check_codec

    def test_grid_codec():
        check_codec(make_grid(), factory="mypkg.fixtures:make_grid", equal=grids_equal)

``check_codec`` asserts that the value encodes, that decoding gives an equal value, that
encoding it again (and encoding what was decoded) gives the same bytes, that the bytes are
the same in a fresh Python process (when ``factory`` names a function that builds the value
there), that no pickle stream is in the bytes, and that decoding never calls pickle.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

from mlbuild.rules import codecs

__all__ = ["PickleUsed", "assert_no_pickle", "check_codec", "encode_in_fresh_process", "no_unpickling"]

# A pickle of protocol 2..5 starts PROTO n; protocols 4 and 5 frame right after it. GLOBAL
# opcodes name a callable by module and name; STACK_GLOBAL follows the two strings it uses.
_PICKLE_MARKERS = (b"\x80\x04\x95", b"\x80\x05\x95", b"cbuiltins\n", b"c__builtin__\n", b"\x80\x02c", b"\x80\x03c")


class PickleUsed(AssertionError):
    """A decoder called pickle."""


def assert_no_pickle(data: bytes) -> None:
    """Fail if ``data`` holds something that looks like a pickle stream."""
    for marker in _PICKLE_MARKERS:
        at = data.find(marker)
        if at >= 0:
            raise AssertionError(f"the encoding holds a pickle stream (bytes {marker!r} at offset {at})")


@contextlib.contextmanager
def no_unpickling() -> Iterator[None]:
    """Within the block, any call to pickle's (or _pickle's) loaders raises ``PickleUsed``."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PickleUsed("a decoder called pickle")

    class Refusing:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            refuse()

    patched: list[tuple[Any, str, Any]] = []
    modules = [pickle, sys.modules.get("_pickle")]
    for mod in modules:
        if mod is None:
            continue
        for name, repl in (("loads", refuse), ("load", refuse), ("Unpickler", Refusing)):
            if hasattr(mod, name):
                patched.append((mod, name, getattr(mod, name)))
                setattr(mod, name, repl)
    try:
        yield
    finally:
        for mod, name, orig in reversed(patched):
            setattr(mod, name, orig)


def encode_in_fresh_process(factory: str, env: dict[str, str] | None = None) -> tuple[str, bytes]:
    """``(codec, bytes)`` of the value ``factory`` (``"module:function"``) builds, encoded by
    a new Python process (so no id, hash seed or cache of this one leaks in)."""
    code = (
        "import importlib, sys\n"
        "from mlbuild.rules import codecs\n"
        f"mod, fn = {factory!r}.split(':')\n"
        "codec, data = codecs.encode(getattr(importlib.import_module(mod), fn)())\n"
        "sys.stdout.buffer.write(codec.encode() + b'\\n' + data)\n"
    )
    run_env = {**os.environ, **(env or {})}
    run_env["PYTHONPATH"] = os.pathsep.join([*sys.path[1:], run_env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, env=run_env, check=False)
    if out.returncode != 0:
        raise AssertionError(f"encoding {factory} in a fresh process failed:\n{out.stderr.decode(errors='replace')}")
    codec, _, data = out.stdout.partition(b"\n")
    return codec.decode(), data


def check_codec(
    value: Any,
    *,
    factory: str | None = None,
    equal: Callable[[Any, Any], bool] | None = None,
    expect_codec: str | None = None,
) -> tuple[str, bytes]:
    """Assert the codec invariants for ``value`` (see the module doc); returns (codec, bytes)."""
    codec, data = codecs.encode(value)
    if expect_codec is not None:
        assert codec == expect_codec, f"encoded with {codec!r}, expected {expect_codec!r}"
    assert codec != "pickle", "the value was pickled"
    assert_no_pickle(data)
    assert codecs.encode(value) == (codec, data), "encoding the same value twice gave different bytes"
    with no_unpickling():
        back = codecs.decode(codec, data)
    same = equal(value, back) if equal is not None else bool(value == back)
    assert same, f"decoding gave a different value: {back!r}"
    assert codecs.encode(back) == (codec, data), "encoding the decoded value gave different bytes"
    if factory is not None:
        mod, _, fn = factory.partition(":")
        local = codecs.encode(getattr(importlib.import_module(mod), fn)())
        assert local == (codec, data) or equal is not None, "factory builds a different value"
        fresh = encode_in_fresh_process(factory)
        assert fresh == local, f"a fresh process encodes {factory} to different bytes"
    return codec, data
