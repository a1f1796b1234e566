"""``--set`` overrides, checked against the plan before anything runs.

``--set //models:resnet.lr=0.01`` sets one field of one target; ``--set '//mnist/...:batch_size=64'``
sets the field on every target under ``//mnist`` that has it. A label that is not in the build,
a field its ``Config`` class doesn't have, a value of the wrong type, or a target that takes no
config is an error (exit 2) naming the closest matches — a mistyped ``--set`` must never build
the unmodified pipeline and report success.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from mlbuild.engine.errors import UserError
from mlbuild.engine.keys.config_schema import ConfigSchema, config_schema, value_matches
from mlbuild.engine.plan.labels import Label
from mlbuild.engine.plan.workspace import Target


def _closest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=3, cutoff=0.5)
    return f"; did you mean {' or '.join(close)}?" if close else ""


class _Schemas:
    def __init__(self, root: str) -> None:
        self.root = root
        self._memo: dict[str, ConfigSchema | None] = {}

    def of(self, target: Target) -> ConfigSchema | None:
        if target.rule_id not in self._memo:
            self._memo[target.rule_id] = config_schema(self.root, target.rule_file, target.rule_func)
        return self._memo[target.rule_id]


def check_overrides(
    root: str, targets: dict[Label, Target], overrides: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Overrides by target label, patterns expanded, every field checked against the target's
    ``Config`` class read from source. ``targets`` are the targets of the build."""
    schemas = _Schemas(root)
    by_label = {str(label): t for label, t in targets.items()}
    out: dict[str, dict[str, Any]] = {}
    for key, fields in overrides.items():
        if key.endswith("..."):
            prefix = key[2:-3].rstrip("/")
            matching = [t for label, t in by_label.items() if not prefix or t.label.package == prefix
                        or t.label.package.startswith(prefix + "/")]
            for field, value in fields.items():
                having = [t for t in matching if _has_field(schemas.of(t), field)]
                if not having:
                    raise UserError(f"--set {key}:{field}: no target of the build under {key} has a config field {field!r}")
                for t in having:
                    _check_value(t, schemas.of(t), field, value)
                    out.setdefault(str(t.label), {})[field] = value
            continue
        target = by_label.get(key)
        if target is None:
            raise UserError(f"--set {key}: not a target of this build{_closest(key, list(by_label))}")
        schema = schemas.of(target)
        for field, value in fields.items():
            _check_field(target, schema, field)
            _check_value(target, schema, field, value)
            out.setdefault(key, {})[field] = value
    return out


def _has_field(schema: ConfigSchema | None, field: str) -> bool:
    return schema is not None and field.split(".")[0] in schema.fields


def _check_field(target: Target, schema: ConfigSchema | None, field: str) -> None:
    if schema is None:
        return  # a config class this static reader can't follow: conversion checks it at run
    if not schema.fields and not schema.name:
        raise UserError(f"--set {target.label}.{field}: {target.label} takes no config (its rule has no `config` parameter)")
    top = field.split(".")[0]
    if top not in schema.fields:
        have = ", ".join(sorted(schema.fields)) or "none"
        raise UserError(
            f"--set {target.label}.{field}: {schema.name} has no field {top!r}{_closest(top, list(schema.fields))} "
            f"(fields: {have})"
        )


def _check_value(target: Target, schema: ConfigSchema | None, field: str, value: Any) -> None:
    if schema is None or "." in field:
        return
    info = schema.fields.get(field)
    if info is not None and value_matches(info.annotation, value) is False:
        raise UserError(
            f"--set {target.label}.{field}={json.dumps(value)}: {schema.name}.{field} is {info.annotation}, "
            f"not {type(value).__name__}"
        )
