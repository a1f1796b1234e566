"""``mlbuild why`` / ``why --dry-run`` / ``diff``: change one thing at a time in a small
workspace shaped like the example (a source data file, a config, a helper three calls down,
a third-party import) and check that exactly that cause is named, and that a downstream step
is explained as "input X changed" pointing at it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlbuild.cache.records import EnvManifest
from mlbuild.engine.inspect.keydiff import config_changes
from mlbuild.engine.keys.environment import HostEnvironment

from support.cli import mlbuild
from support.workspace import write_workspace

FILES = {
    "mlbuild.toml": '[workspace]\nname = "why-test"\n',
    "lib/__init__.py": "",
    "lib/helpers.py": (
        "def step2(x):\n    return step3(x) + 1\n\n\n"
        "def step3(x):\n    return x * 2\n"
    ),
    "data/__init__.py": "",
    "data/raw.csv": "1\n2\n3\n",
    "data/BUILD.py": (
        "from mlbuild import File, target\n\n"
        'target(name="raw", rule="load.py:load", inputs={"csv": File("raw.csv")})\n'
        'target(name="clean", rule="clean.py:clean", inputs={"raw": ":raw"},\n'
        '       config={"scale": 2, "opts": {"clip": 10}})\n'
    ),
    "data/load.py": (
        "from pathlib import Path\n\nfrom mlbuild import rule\n\n\n"
        "@rule()\ndef load(csv: Path) -> list:\n    return [int(x) for x in csv.read_text().split()]\n"
    ),
    "data/clean.py": (
        "import msgspec\nfrom mlbuild import rule\n\nfrom lib.helpers import step2\n\n\n"
        "def step1(x):\n    return step2(x)\n\n\n"
        "@rule()\ndef clean(raw: list, config: dict) -> list:\n"
        "    out = [min(step1(v) * config['scale'], config['opts']['clip']) for v in raw]\n"
        "    return msgspec.json.decode(msgspec.json.encode(out))\n"
    ),
    "models/__init__.py": "",
    "models/BUILD.py": (
        "from mlbuild import target\n\n"
        'target(name="fit", rule="fit.py:fit", inputs={"data": "//data:clean"})\n'
    ),
    "models/fit.py": "from mlbuild import rule\n\n\n@rule()\ndef fit(data: list) -> int:\n    return sum(data)\n",
}


def cli(ws: Path, *args: str) -> str:
    return mlbuild(ws, *args).stdout


def build(ws: Path, target: str = "//models:fit") -> None:
    """Build in this process, so that a monkeypatch applies."""
    mlbuild(ws, "build", "-q", target)


def why(ws: Path, *args: str) -> dict[str, dict[str, Any]]:
    data = json.loads(cli(ws, "why", "--json", *args, "//models:fit"))
    return {a["label"]: a for a in data["actions"]}


def plain(cause: dict[str, Any]) -> dict[str, Any]:
    """A cause without the fields a test does not pin (digests, diff text)."""
    return {k: v for k, v in cause.items() if k in ("kind", "name", "label", "file", "change", "upstream")}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = write_workspace(tmp_path / "ws", FILES)
    build(root)
    return root


def assert_only(actions: dict[str, dict[str, Any]], where: str, cause: dict[str, Any], cached: list[str]) -> dict[str, Any]:
    """``where`` was rebuilt for exactly ``cause``; //models:fit for exactly "input data changed"
    because of it (unless it is in ``cached``: the rebuilt step's output came out the same);
    ``cached`` were cached. Returns where's cause."""
    for label in cached:
        assert actions[label]["verdict"] in ("cached", "up_to_date"), actions[label]
        assert actions[label]["causes"] == []
    own = actions[where]["causes"]
    assert [plain(c) for c in own] == [cause]
    if "//models:fit" not in cached:
        fit = actions["//models:fit"]["causes"]
        assert [plain(c) for c in fit] == [
            {"kind": "input", "name": "data", "label": "", "file": "", "change": "changed", "upstream": "//data:clean"}
        ]
        assert [plain(c) for c in fit[0]["because"]] == [dict(cause, label=where)]
    return own[0]


def test_first_build_is_new_targets(ws: Path) -> None:
    actions = why(ws)
    assert list(actions) == ["//data:raw", "//data:clean", "//models:fit"]
    for a in actions.values():
        assert a["verdict"] == "rebuilt"
        assert [c["kind"] for c in a["causes"]] == ["new_target"]


def test_no_change_everything_cached(ws: Path) -> None:
    build(ws)
    actions = why(ws)
    assert {a["verdict"] for a in actions.values()} == {"cached"}
    assert "cached (local)" in cli(ws, "why", "//models:fit")


def test_helper_three_calls_down(ws: Path) -> None:
    helpers = ws / "lib/helpers.py"
    helpers.write_text(helpers.read_text().replace("return x * 2", "return x * 3"))
    expected = {"kind": "function", "name": "lib.helpers.step3", "label": "", "file": "lib/helpers.py", "change": "changed", "upstream": ""}
    dry = why(ws, "--dry-run")
    assert dry["//data:clean"]["verdict"] == "would_rebuild"
    assert dry["//models:fit"]["key"] is None  # it waits on clean's new result
    assert_only(dry, "//data:clean", expected, ["//data:raw"])
    build(ws)
    cause = assert_only(why(ws), "//data:clean", expected, ["//data:raw"])
    # The old and new normalized sources come from the CAS, not from the working tree.
    assert "-    return x * 2" in cause["diff"] and "+    return x * 3" in cause["diff"]
    text = cli(ws, "why", "//models:fit")
    assert "function lib.helpers.step3 (lib/helpers.py) changed" in text
    assert "+    return x * 3" in text


def test_config_field(ws: Path) -> None:
    build_file = ws / "data/BUILD.py"
    build_file.write_text(build_file.read_text().replace('"clip": 10', '"clip": 5'))
    expected = {"kind": "config", "name": "opts.clip", "label": "", "file": "", "change": "changed", "upstream": ""}
    assert_only(why(ws, "--dry-run"), "//data:clean", expected, ["//data:raw"])
    build(ws)
    cause = assert_only(why(ws), "//data:clean", expected, ["//data:raw"])
    assert (cause["old"], cause["new"]) == (10, 5)
    assert "config opts.clip: 10 -> 5" in cli(ws, "why", "//models:fit")


def test_data_file(ws: Path) -> None:
    (ws / "data/raw.csv").write_text("0\n2\n3\n")
    expected = {"kind": "source", "name": "csv", "label": "", "file": "data/raw.csv", "change": "changed", "upstream": ""}
    dry = why(ws, "--dry-run")
    assert [plain(c) for c in dry["//data:raw"]["causes"]] == [expected]
    build(ws)
    actions = why(ws)
    assert [plain(c) for c in actions["//data:raw"]["causes"]] == [expected]
    clean = actions["//data:clean"]["causes"]
    assert [plain(c) for c in clean] == [
        {"kind": "input", "name": "raw", "label": "", "file": "", "change": "changed", "upstream": "//data:raw"}
    ]
    assert [plain(c) for c in clean[0]["because"]] == [dict(expected, label="//data:raw")]
    fit = actions["//models:fit"]["causes"]
    assert [plain(c) for c in fit[0]["because"]] == [dict(expected, label="//data:raw")]


def test_package_version(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = HostEnvironment.manifest

    def upgraded(self: HostEnvironment, imports: Any) -> EnvManifest:
        env = real(self, imports)
        if "msgspec" not in env.packages:
            return env
        return msgspec.structs.replace(env, packages={**env.packages, "msgspec": "99.0"})

    monkeypatch.setattr(HostEnvironment, "manifest", upgraded)
    expected = {"kind": "package", "name": "msgspec", "label": "", "file": "", "change": "changed", "upstream": ""}
    assert_only(why(ws, "--dry-run"), "//data:clean", expected, ["//data:raw"])
    build(ws)
    # clean's output does not depend on msgspec's version: fit's key is unchanged, so cached.
    cause = assert_only(why(ws), "//data:clean", expected, ["//data:raw", "//models:fit"])
    assert cause["new"] == "99.0" and cause["old"] == msgspec.__version__


def test_dry_run_runs_nothing(ws: Path) -> None:
    from mlbuild.cache.store import LocalStore, default_cache_dir

    (ws / "data/raw.csv").write_text("7\n")
    def counts() -> tuple[int, int]:
        store = LocalStore(default_cache_dir())
        try:
            return len(list(store.index.iter_actions())), len(store.index.list_builds())
        finally:
            store.close()

    before = counts()
    actions = why(ws, "--dry-run")
    assert [a["verdict"] for a in actions.values()] == ["would_rebuild"] * 3
    assert counts() == before


def test_diff_builds(ws: Path) -> None:
    build_file = ws / "data/BUILD.py"
    build_file.write_text(build_file.read_text().replace('"scale": 2', '"scale": 3'))
    build(ws)
    from mlbuild.cache.store import LocalStore, default_cache_dir

    store = LocalStore(default_cache_dir())
    new, old = store.index.list_builds()[:2]
    store.close()
    data = json.loads(cli(ws, "diff", "--json", old.id, new.id))
    by_label = {t["label"]: t for t in data["targets"]}
    assert by_label["//data:raw"]["status"] == "same"
    assert by_label["//data:clean"]["status"] == "changed"
    assert [plain(c) for c in by_label["//data:clean"]["causes"]] == [
        {"kind": "config", "name": "scale", "label": "", "file": "", "change": "changed", "upstream": ""}
    ]
    fit = by_label["//models:fit"]["causes"]
    assert [c["because"][0]["name"] for c in fit] == ["scale"]
    assert "config scale: 2 -> 3" in cli(ws, "diff", old.id[:-2], new.id)


def test_unknown_target_and_build(ws: Path) -> None:
    run = mlbuild(ws, "why", "//data:nothing", check=False)
    assert run.returncode == 2 and "//data:nothing has not been built yet" in run.stderr
    run = mlbuild(ws, "diff", "nope", "nope2", check=False)
    assert run.returncode == 2 and "no recorded build 'nope'" in run.stderr


_plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.dictionaries(st.text("abc", min_size=1, max_size=3), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text("abcd", min_size=1, max_size=3), _plain, max_size=5), st.integers())
def test_config_changes_names_exactly_the_changed_field(config: dict[str, Any], value: int) -> None:
    assert config_changes(config, config) == []
    # "zz" is outside the keys' alphabet: a new field, reported once, whole.
    added = config_changes(config, {**config, "zz": {"inner": value}})
    assert [(c.name, c.change, c.new) for c in added] == [("zz", "added", {"inner": value})]
    nested = config_changes({**config, "zz": {"inner": 0, "k": 1}}, {**config, "zz": {"inner": value, "k": 1}})
    assert [(c.name, c.old, c.new) for c in nested] == ([] if value == 0 else [("zz.inner", 0, value)])
