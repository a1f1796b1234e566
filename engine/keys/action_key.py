"""Action keys: xxh3-128 over the canonical encoding of a KeySpec, and what goes into one."""

from __future__ import annotations

from typing import Any

import msgspec

from mlbuild.cache.digest import canonical_bytes, digest_bytes
from mlbuild.cache.records import KEY_SCHEMA, KeySpec
from mlbuild.engine.errors import UserError


def action_key(spec: KeySpec) -> str:
    return digest_bytes(canonical_bytes(spec))


def canonical_config(config: Any, label: str) -> Any:
    """Config as plain data with a stable order; an unhashable config is an error naming the target.

    Dict keys and Struct fields are both sorted, so neither order changes the key.
    """
    if config is None:
        return {}
    try:
        return msgspec.to_builtins(config, order="sorted")
    except TypeError as exc:
        raise UserError(f"{label}: config cannot be hashed: {exc}") from None


def make_key_spec(rule: str, code: str, inputs: dict[str, str], config: Any, env: str) -> KeySpec:
    """The KeySpec of an action: what can change its outputs, and nothing else.

    Deliberately left out, so that a result is shared wherever and however it was made:

    - the executor (local, docker, ray, kuberay) and the host: a step gives the same bytes on
      any of them, which is what ``mlbuild verify`` checks;
    - the resources a target or a build asks for (``resources=`` in BUILD.py, executor
      options) and how often a step is retried: they decide where and how often it runs, not
      what it returns (options written in the rule's own ``@rule(...)`` are part of its
      source, so the code digest covers them);
    - the image *tag*: only the image's content digest is in ``env``, since a tag can move;
    - the label: two targets with the same rule, inputs and config are one action (the label
      is kept in the ActionResult for people, not in the key).
    """
    return KeySpec(schema=KEY_SCHEMA, rule=rule, code=code, inputs=dict(sorted(inputs.items())), config=config, env=env)
