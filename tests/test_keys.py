"""Action keys: deterministic across processes, sensitive to every component, blind to order."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mlbuild.cache.records import KeySpec
from mlbuild.engine.keys.action_key import action_key, canonical_config, make_key_spec

digests = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
scalars = st.one_of(st.integers(-(2**53), 2**53), st.floats(allow_nan=False), st.text(max_size=20), st.booleans(), st.none())
configs = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(names, children, max_size=4)),
    max_leaves=12,
)
specs = st.builds(
    make_key_spec,
    rule=st.builds(lambda f, n: f"{f}.py:{n}", names, names),
    code=digests,
    inputs=st.dictionaries(names, digests, max_size=5),
    config=st.dictionaries(names, configs, max_size=5),
    env=digests,
)


def _reordered(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(v) for v in value]
    return value


@given(specs)
def test_dict_order_does_not_matter(spec: KeySpec) -> None:
    shuffled = make_key_spec(spec.rule, spec.code, _reordered(spec.inputs), _reordered(spec.config), spec.env)
    assert action_key(shuffled) == action_key(spec)


@given(specs, st.sampled_from(["rule", "code", "inputs", "config", "env", "schema"]), st.data())
def test_every_component_changes_the_key(spec: KeySpec, field: str, data: st.DataObject) -> None:
    if field == "rule":
        changed = spec.rule + "x"
        other = KeySpec(spec.schema, changed, spec.code, spec.inputs, spec.config, spec.env)
    elif field == "code":
        other = KeySpec(spec.schema, spec.rule, data.draw(digests.filter(lambda d: d != spec.code)), spec.inputs, spec.config, spec.env)
    elif field == "inputs":
        name = data.draw(names)
        new = dict(spec.inputs)
        new[name] = data.draw(digests.filter(lambda d: d != spec.inputs.get(name)))
        other = KeySpec(spec.schema, spec.rule, spec.code, new, spec.config, spec.env)
    elif field == "config":
        name = data.draw(names)
        new_config = dict(spec.config)
        new_config[name] = data.draw(configs.filter(lambda v: name not in spec.config or v != spec.config[name]))
        if new_config == spec.config:
            return
        other = KeySpec(spec.schema, spec.rule, spec.code, spec.inputs, new_config, spec.env)
    elif field == "env":
        other = KeySpec(spec.schema, spec.rule, spec.code, spec.inputs, spec.config, data.draw(digests.filter(lambda d: d != spec.env)))
    else:
        other = KeySpec(spec.schema + 1, spec.rule, spec.code, spec.inputs, spec.config, spec.env)
    assert action_key(other) != action_key(spec)


_CHILD = """
import json, sys
from mlbuild.engine.keys.action_key import action_key, make_key_spec
for line in sys.stdin:
    s = json.loads(line)
    print(action_key(make_key_spec(s["rule"], s["code"], s["inputs"], s["config"], s["env"])))
"""


@settings(max_examples=1)
@given(st.lists(specs, min_size=30, max_size=30))
def test_same_key_in_a_fresh_process(batch: list[KeySpec]) -> None:
    lines = "".join(
        json.dumps({"rule": s.rule, "code": s.code, "inputs": s.inputs, "config": s.config, "env": s.env}) + "\n"
        for s in batch
    )
    # A different hash seed makes any dependence on set or dict iteration order show up.
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], input=lines, capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.split() == [action_key(s) for s in batch]


def test_unhashable_config_is_a_clear_error() -> None:
    import pytest

    from mlbuild.engine.errors import UserError

    with pytest.raises(UserError, match="//a:b: config cannot be hashed"):
        canonical_config({"fn": lambda: 1}, "//a:b")


def test_struct_field_order_does_not_matter() -> None:
    import msgspec

    class AB(msgspec.Struct):
        a: int
        b: dict

    class BA(msgspec.Struct):
        b: dict
        a: int

    ab = canonical_config(AB(1, {"y": 2, "x": 1}), "//t:t")
    ba = canonical_config(BA({"x": 1, "y": 2}, 1), "//t:t")
    spec = lambda config: make_key_spec("r.py:f", "0" * 32, {}, config, "1" * 32)  # noqa: E731
    assert action_key(spec(ab)) == action_key(spec(ba))
    assert action_key(spec(ab)) != action_key(spec(canonical_config(AB(2, {"y": 2, "x": 1}), "//t:t")))


# Golden digests: a fixed record gives a fixed digest, in any process, on any machine. A failure
# here means the key schema changed (every cached result would be missed): if that is meant,
# bump KEY_SCHEMA (cache/records.py) and update the digests; if not, the change is a bug.
GOLDEN_SPEC = dict(
    rule="models/train.py:train",
    code="0" * 32,
    inputs={"split": "1" * 32, "data": "2" * 32},
    config={"epochs": 3, "optim": {"lr": 0.05, "name": "sgd"}},
    env="3" * 32,
)


def test_golden_action_key() -> None:
    from mlbuild.cache.records import KEY_SCHEMA

    assert KEY_SCHEMA == 1
    assert action_key(make_key_spec(**GOLDEN_SPEC)) == "4b7b3e0e6f8e283ef829ad0b1932e878"  # type: ignore[arg-type]


def test_golden_manifest_digests() -> None:
    """The code and environment digests in a key are digests of these manifests' bytes."""
    from mlbuild.cache.digest import canonical_bytes, digest_bytes
    from mlbuild.cache.records import CodeManifest, EnvManifest, FunctionEntry

    code = CodeManifest(
        rule="models/train.py:train",
        functions=[FunctionEntry("models.train.train", "models/train.py", "4" * 32)],
        imports=["numpy"],
    )
    assert digest_bytes(canonical_bytes(code)) == "e4fd505394df9c787ec99ac483c82e15"
    host = EnvManifest(python="3.11.7", packages={"numpy": "1.26.4"})
    assert digest_bytes(canonical_bytes(host)) == "3e9a49575245e502f94ca6d15e4f2645"
    image = EnvManifest(image="sha256:" + "5" * 64)
    assert digest_bytes(canonical_bytes(image)) == "7dd31e7f8e7355de2dfd59d0e9a1530d"


def test_golden_tree_digest(tmp_path: Any) -> None:
    """A files output's digest is its tree blob's: its layout is pinned too (codec ``tree``)."""
    from mlbuild.cache.cas import CAS
    from mlbuild.cache.trees import put_tree

    (tmp_path / "out" / "a").mkdir(parents=True)
    (tmp_path / "out" / "a" / "b.txt").write_bytes(b"abc")
    digest, size = put_tree(CAS(tmp_path / "cas"), tmp_path / "out")
    assert (digest, size) == ("b62043b72dca9af8fdfb558b2de2f3cc", 3)
