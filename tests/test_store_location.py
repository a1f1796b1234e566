"""One way to find and open the local store (cache/location.py, cache/store.py open_store)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlbuild.cache.location import default_cache_dir, user_cache_dir
from mlbuild.cache.store import open_store
from mlbuild.engine.run.context import store_dir


def test_flag_then_environment_then_workspace_then_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("MLBUILD_CACHE_DIR", raising=False)
    assert default_cache_dir() == user_cache_dir() == tmp_path / "xdg" / "mlbuild"
    assert default_cache_dir("/ws/cache") == Path("/ws/cache")
    monkeypatch.setenv("MLBUILD_CACHE_DIR", str(tmp_path / "env"))
    assert default_cache_dir("/ws/cache") == tmp_path / "env"
    assert default_cache_dir("/ws/cache", flag=tmp_path / "flag") == tmp_path / "flag"
    store = open_store(flag=tmp_path / "flag")
    assert store.root == tmp_path / "flag" and (tmp_path / "flag" / "index").is_dir()
    store.close()


def test_a_command_outside_a_workspace_uses_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLBUILD_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert store_dir(directory=tmp_path) == tmp_path / "xdg" / "mlbuild"
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "mlbuild.toml").write_text("[workspace]\nname = 'w'\n[cache]\ndir = 'here'\n")
    assert store_dir(directory=ws) == ws / "here"  # relative to the workspace root
    assert store_dir("/elsewhere", directory=ws) == Path("/elsewhere")
