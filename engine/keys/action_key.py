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
    return KeySpec(schema=KEY_SCHEMA, rule=rule, code=code, inputs=dict(sorted(inputs.items())), config=config, env=env)
