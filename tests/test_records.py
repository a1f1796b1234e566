"""Stored and sent records: versioned, frozen where the code allows, old bytes still decode;
and the public API is exactly what ``mlbuild/__init__.py`` says it is."""

from __future__ import annotations

import msgspec
import pytest

import mlbuild
from mlbuild.cache.records import (
    ACTION_SCHEMA,
    BUILD_SCHEMA,
    ActionResult,
    ArtifactRef,
    BuildAction,
    BuildRecord,
    KeySpec,
    RemoteStats,
)
from mlbuild.engine.interfaces import ActionOutcome, ActionSpec
from mlbuild.rules.rule import RuleOptions


def test_public_api_is_pinned() -> None:
    # Adding to or removing from the public API is a decision: change this list on purpose.
    assert sorted(mlbuild.__all__) == sorted(
        ["Config", "File", "RayCluster", "Resources", "params", "register_codec", "rule", "target", "trust_types", "__version__"]
    )
    for name in mlbuild.__all__:
        if name != "RayCluster":  # imported on first use, so `import mlbuild` never loads ray
            assert getattr(mlbuild, name) is not None


SPEC = KeySpec(schema=1, rule="a.py:f", code="0" * 32, inputs={}, config={}, env="1" * 32)


def _without(record: msgspec.Struct, *fields: str) -> bytes:
    """The bytes a writer from before ``fields`` existed would have stored."""
    data = msgspec.to_builtins(record)
    for name in fields:
        data.pop(name)
    return msgspec.msgpack.encode(data)


def test_records_from_before_the_schema_field_decode_as_version_1() -> None:
    result = ActionResult(key="k", label="//a:b", rule="a.py:f", outputs=[ArtifactRef("value", "2" * 32, "msgpack", 3)], key_spec=SPEC)
    old = msgspec.msgpack.decode(_without(result, "schema", "producers", "seconds"), type=ActionResult)
    assert old.schema == 1 and old.producers is None and old.outputs == result.outputs
    record = BuildRecord(
        id="b", started=0.0, finished=None, status="running", user="u", host="h", workspace="/w", argv=[], targets=[]
    )
    assert msgspec.msgpack.decode(_without(record, "schema", "plan", "edges"), type=BuildRecord).schema == 1
    assert msgspec.msgpack.decode(_without(RemoteStats(), "schema"), type=RemoteStats).schema == 1
    spec = ActionSpec(key="k", label="//a:b", rule_file="a.py", rule_func="f", inputs=[], config={}, options=RuleOptions(), key_spec=SPEC, workspace="/w")
    assert msgspec.msgpack.decode(_without(spec, "schema"), type=ActionSpec).schema == 1
    assert msgspec.msgpack.decode(_without(ActionOutcome(key="k"), "schema"), type=ActionOutcome).schema == 1


def test_current_versions() -> None:
    # Writers set these (a record's default is the version before the field existed); a
    # reader that meets a newer one knows it is reading the future.
    assert ACTION_SCHEMA == 2 and BUILD_SCHEMA == 2


@pytest.mark.parametrize("record", [ActionResult(key="k", label="l", rule="r", outputs=[], key_spec=SPEC), BuildAction("l", "k", "cached"), SPEC])
def test_stored_records_are_frozen(record: msgspec.Struct) -> None:
    with pytest.raises(AttributeError):
        record.key = "other"  # type: ignore[attr-defined]
