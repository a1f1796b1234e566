"""The engine's API: ``build(BuildSettings)``, the configuration chain (``mlbuild config``) and
the executor contract every backend implements."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mlbuild.engine import BuildSettings, RemoteSettings, build
from mlbuild.engine.cli import main
from mlbuild.engine.errors import UserError
from mlbuild.engine.interfaces import ExecutorContext, NoOptions
from mlbuild.engine.run.backends import (
    EXECUTORS,
    check_contract,
    executor_class,
    executor_options,
    make_executor,
)

from support.workspace import NUMBERS_RULES

BUILD = '''
from mlbuild import target

target(name="numbers", rule="//pkg/rules.py:numbers", config={"n": 4})
target(name="total", rule="//pkg/rules.py:total", inputs={"xs": ":numbers"})
'''


def write_workspace(root: Path, toml: str = "") -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "mlbuild.toml").write_text(toml)
    (root / "pkg" / "rules.py").write_text(NUMBERS_RULES)
    (root / "pkg" / "BUILD.py").write_text(BUILD)
    return root


def config(capsys: pytest.CaptureFixture[str], ws: Path, *flags: str) -> dict[str, Any]:
    capsys.readouterr()
    code = main(["-C", str(ws), "config", "--json", *flags])
    out = capsys.readouterr()
    assert code == 0, out.err
    return dict(json.loads(out.out))


# -- the configuration chain ------------------------------------------------------------------


def test_each_setting_comes_from_the_first_of_flag_env_toml_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = write_workspace(tmp_path / "ws", '[workspace]\nexecutor = "docker"\n[cache]\nremote = "file:///toml"\nremote_timeout = 3\n')
    monkeypatch.delenv("MLBUILD_CACHE_DIR")
    got = config(capsys, ws)
    assert got["executor"] == {"value": "docker", "source": "mlbuild.toml [workspace] executor"}
    assert got["remote.url"] == {"value": "file:///toml", "source": "mlbuild.toml [cache] remote"}
    assert got["remote.timeout"] == {"value": 3.0, "source": "mlbuild.toml [cache] remote_timeout"}
    assert got["remote.upload"] == {"value": True, "source": "default"}
    assert got["jobs"] == {"value": os.cpu_count() or 1, "source": "default"}
    assert got["cache.dir"]["source"] == "default"
    assert got["workspace"]["value"] == str(ws)

    monkeypatch.setenv("MLBUILD_REMOTE_CACHE", "file:///env")
    monkeypatch.setenv("MLBUILD_REMOTE_TIMEOUT", "7.5")
    monkeypatch.setenv("MLBUILD_REMOTE_UPLOAD", "false")
    monkeypatch.setenv("MLBUILD_EXECUTOR", "local")
    monkeypatch.setenv("MLBUILD_CACHE_DIR", str(tmp_path / "c"))
    got = config(capsys, ws)
    assert got["executor"] == {"value": "local", "source": "env MLBUILD_EXECUTOR"}
    assert got["remote.url"] == {"value": "file:///env", "source": "env MLBUILD_REMOTE_CACHE"}
    assert got["remote.timeout"] == {"value": 7.5, "source": "env MLBUILD_REMOTE_TIMEOUT"}
    assert got["remote.upload"] == {"value": False, "source": "env MLBUILD_REMOTE_UPLOAD"}
    assert got["cache.dir"] == {"value": str(tmp_path / "c"), "source": "env MLBUILD_CACHE_DIR"}

    got = config(capsys, ws, "--executor", "ray", "--ray-address", "10.0.0.1:6379", "--remote-cache", "file:///flag",
                 "--remote-timeout", "1", "--remote-upload", "true", "-j", "3")
    assert got["executor"] == {"value": "ray", "source": "flag"}
    assert got["jobs"] == {"value": 3, "source": "flag"}
    assert got["remote.url"] == {"value": "file:///flag", "source": "flag"}
    assert got["remote.timeout"] == {"value": 1.0, "source": "flag"}
    assert got["remote.upload"] == {"value": True, "source": "flag"}
    # The chosen backend's options, each from its flag or its default.
    assert got["executor.ray_address"] == {"value": "10.0.0.1:6379", "source": "flag"}
    assert got["executor.ray_cas_root"] == {"value": None, "source": "default"}


def test_config_prints_one_line_per_setting_and_never_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = write_workspace(tmp_path / "ws")
    monkeypatch.setenv("MLBUILD_CACHE_KEY", "team-secret")
    capsys.readouterr()
    assert main(["-C", str(ws), "config"]) == 0
    out = capsys.readouterr().out
    assert "team-secret" not in out
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert lines["remote.signing_key"].endswith("(env MLBUILD_CACHE_KEY)")
    assert "(set)" in lines["remote.signing_key"]
    assert lines["executor"].endswith("(default)")


def test_bad_settings_are_one_readable_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = write_workspace(tmp_path / "ws")
    monkeypatch.setenv("MLBUILD_JOBS", "many")
    capsys.readouterr()
    assert main(["-C", str(ws), "config"]) != 0
    assert capsys.readouterr().err.strip() == "mlbuild: error: MLBUILD_JOBS: 'many' is not a number"
    monkeypatch.delenv("MLBUILD_JOBS")
    # A flag of another backend names itself.
    assert main(["-C", str(ws), "//pkg:total", "--docker-network", "none"]) != 0
    assert capsys.readouterr().err.strip() == "mlbuild: error: --docker-network: not an option of --executor local"
    monkeypatch.setenv("MLBUILD_REMOTE_OPTIONS", "[1]")
    assert main(["-C", str(ws), "config"]) != 0
    assert "MLBUILD_REMOTE_OPTIONS must be a JSON object" in capsys.readouterr().err


# -- build(settings) --------------------------------------------------------------------------


def test_build_runs_in_process_and_a_second_build_is_all_hits(tmp_path: Path, tmp_cache_dir: Path) -> None:
    ws = write_workspace(tmp_path / "ws")
    settings = BuildSettings(targets=["//pkg:total"], directory=str(ws), jobs=1, quiet=True,
                             overrides={"//pkg:numbers": {"n": 5}})
    first = build(settings)
    assert not first.failures
    assert first.counts()["executed"] == 2
    assert msgspec.msgpack.decode((ws / "mlbuild-out" / "pkg" / "total.value.msgpack").read_bytes()) == 10
    second = build(settings)
    assert second.counts()["cached"] == 2 and second.counts()["executed"] == 0
    # Relative labels are read from the settings' directory.
    relative = build(msgspec.structs.replace(settings, targets=[":total"], directory=str(ws / "pkg"),
                                             overrides={":numbers": {"n": 5}}))
    assert relative.results["//pkg:total"].key == first.results["//pkg:total"].key
    assert relative.record.overrides == {"//pkg:numbers": {"n": 5}}


def test_a_cache_only_build_runs_nothing_and_records_nothing(tmp_path: Path, tmp_cache_dir: Path) -> None:
    from mlbuild.cache.store import LocalStore

    ws = write_workspace(tmp_path / "ws")
    result = build(BuildSettings(targets=["//pkg:total"], directory=str(ws), run_steps=False,
                                 remote=RemoteSettings(enabled=False)))
    assert set(result.failures) == {"//pkg:numbers"}
    store = LocalStore(tmp_cache_dir)
    try:
        assert store.index.list_builds() == []
    finally:
        store.close()


def test_an_unknown_executor_fails_before_anything_runs(tmp_path: Path) -> None:
    ws = write_workspace(tmp_path / "ws")
    with pytest.raises(UserError, match="unknown executor 'nope'; known: docker, inline, kuberay, local, ray"):
        build(BuildSettings(targets=["//pkg:total"], directory=str(ws), executor="nope"))


# -- the executor contract --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXECUTORS))
def test_every_backend_implements_the_contract(name: str) -> None:
    cls = executor_class(name)
    assert cls.name == name
    # Every field of a backend's options is "not given" by default.
    options = cls.options_type()
    assert all(getattr(options, f) in (None, False) for f in cls.options_type.__struct_fields__)


def test_containers_and_clusters_declare_what_they_need() -> None:
    assert [n for n in sorted(EXECUTORS) if executor_class(n).needs_image] == ["docker", "kuberay"]
    assert [n for n in sorted(EXECUTORS) if executor_class(n).needs_shared_path] == ["kuberay", "ray"]


def test_a_class_that_breaks_the_contract_is_named_with_what_it_lacks() -> None:
    class Half:
        name = "half"

        def submit(self, spec: Any) -> Any: ...

    with pytest.raises(TypeError) as info:
        check_contract("half", Half)
    message = str(info.value)
    assert "Half" in message
    for lacking in ("needs_image: bool", "needs_shared_path: bool", "options_type", "close()"):
        assert lacking in message
    assert "submit()" not in message


def test_an_executor_is_made_from_its_context_and_its_own_options(tmp_path: Path) -> None:
    context = ExecutorContext(cas_root=str(tmp_path / "cas"), workspace=str(tmp_path), jobs=2, build_id="b-1")
    local = executor_class("local")
    executor = make_executor(local, context, None)
    try:
        assert executor.jobs == 2  # type: ignore[attr-defined]
    finally:
        executor.close()
    ray = executor_class("ray")
    with pytest.raises(UserError, match="--executor local takes NoOptions, not RayOptions"):
        make_executor(local, context, executor_options(ray, {"ray_address": "x:1"}))
    assert executor_options(local, {}) == NoOptions()
    with pytest.raises(UserError, match="--kube-workers: not an option of --executor ray"):
        executor_options(ray, {"kube_workers": 2})
