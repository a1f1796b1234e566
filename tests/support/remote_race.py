"""Two hosts writing one action entry to a remote cache at once (file and S3 remotes alike)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import msgspec

from mlbuild.cache.records import ActionResult, ArtifactRef, KeySpec


def result_for(key: str, host: str) -> ActionResult:
    """A small valid entry under ``key``, written by ``host``."""
    spec = KeySpec(schema=1, rule="r.py:f", code="c" * 32, inputs={}, config=None, env="e" * 32)
    return ActionResult(key=key, label="//p:t", rule="r.py:f", key_spec=spec, host=host,
                        outputs=[ArtifactRef("value", "d" * 32, "msgpack", 3)])


def race_two_writers(open_cache: Callable[[], Any], key: str, rounds: int) -> None:
    """Two threads, each with its own client (as two hosts have), write the entry ``rounds``
    times at once; then exactly one valid entry, from one of them, must be there."""
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(host: str) -> None:
        cache = open_cache()
        start.wait()
        try:
            for _ in range(rounds):
                cache.put_action(result_for(key, host))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(h,)) for h in ("ci-1", "ci-2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    got = open_cache().get_action(key)
    assert got is not None and got.host in ("ci-1", "ci-2")
    assert msgspec.structs.replace(got, host="x") == result_for(key, "x")
