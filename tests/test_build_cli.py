"""The build end to end through the CLI, on small workspaces written by the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from support.cli import mlbuild, mlbuild_process
from support.workspace import write_workspace

RULES = '''
from pathlib import Path
from mlbuild import rule, Config


class ScaleConfig(Config):
    factor: int = 2


def double(x):
    return x * 2


@rule
def source(config: dict) -> list:
    return list(range(config["n"]))


@rule
def scale(numbers: list, config: ScaleConfig) -> list:
    return [double(x) * config.factor for x in numbers]


@rule
def total(numbers: list, out: Path) -> int:
    (out / "total.txt").write_text(str(sum(numbers)))
    print("summing", len(numbers), "numbers")
    return sum(numbers)


@rule
def read_file(path: Path) -> str:
    return path.read_text().upper()


@rule
def boom(numbers: list) -> int:
    raise ValueError("the step exploded on purpose")


@rule
def unencodable(numbers: list) -> object:
    return object()
'''

BUILD = '''
from mlbuild import target, File

target(name="source", rule="rules.py:source", config={"n": 5})
target(name="scaled", rule="rules.py:scale", inputs={"numbers": ":source"}, config={"factor": 3})
target(name="total", rule="rules.py:total", inputs={"numbers": ":scaled"})
target(name="text", rule="rules.py:read_file", inputs={"path": File("data.txt")})
'''


def build_json(ws: Path, *args: str) -> dict[str, Any]:
    return mlbuild(ws, *args, "--json").json()


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return write_workspace(tmp_path / "ws", {"pkg/rules.py": RULES, "pkg/BUILD.py": BUILD, "pkg/data.txt": "hello"})


def test_build_then_noop_then_partial_rebuild(ws: Path) -> None:
    first = build_json(ws, "build", "//pkg:total")
    assert first["actions"] == {"total": 3, "cached": 0, "remote_hits": 0, "executed": 3, "failed": 0, "skipped": 0}
    assert set(first["outputs"]["//pkg:total"]) == {"value", "files"}
    assert (ws / "mlbuild-out" / "pkg" / "total" / "total.txt").read_text() == str(sum(x * 2 * 3 for x in range(5)))

    again = build_json(ws, "//pkg:total")
    assert again["actions"]["executed"] == 0 and again["actions"]["cached"] == 3
    assert again["outputs"] == first["outputs"]

    # A config change rebuilds that step and what depends on it, not what it depends on.
    build = ws / "pkg" / "BUILD.py"
    build.write_text(build.read_text().replace('{"factor": 3}', '{"factor": 4}'))
    changed = build_json(ws, "//pkg:total")
    assert changed["actions"]["executed"] == 2 and changed["actions"]["cached"] == 1


def test_helper_edit_rebuilds_and_reformat_does_not(ws: Path) -> None:
    build_json(ws, "//pkg:total")
    rules = ws / "pkg" / "rules.py"
    rules.write_text(rules.read_text().replace("def double(x):\n    return x * 2", "def double(x):\n    # a comment\n    return (\n        x * 2\n    )"))
    assert build_json(ws, "//pkg:total")["actions"]["executed"] == 0
    rules.write_text(rules.read_text().replace("x * 2\n", "x * 5\n"))
    assert build_json(ws, "//pkg:total")["actions"]["executed"] == 2


def test_file_inputs_hash_by_content(ws: Path) -> None:
    assert build_json(ws, "//pkg:text")["actions"]["executed"] == 1
    data = ws / "pkg" / "data.txt"
    data.write_text("hello")  # same content, new mtime
    assert build_json(ws, "//pkg:text")["actions"]["executed"] == 0
    data.write_text("world")
    assert build_json(ws, "//pkg:text")["actions"]["executed"] == 1
    assert "WORLD" in mlbuild(ws, "show", "//pkg:text").stdout


def test_set_overrides_a_config_field(ws: Path) -> None:
    base = build_json(ws, "//pkg:scaled")
    over = build_json(ws, "//pkg:scaled", "--set", "//pkg:scaled.factor=10")
    assert over["actions"]["executed"] == 1 and over["actions"]["cached"] == 1
    assert over["outputs"] != base["outputs"]


def test_noop_build_imports_no_rule_module(ws: Path, tmp_path: Path) -> None:
    # The rules import a "heavy" third-party module that records every import of it.
    site = tmp_path / "site"
    site.mkdir()
    marker = tmp_path / "imported.log"
    (site / "heavy_dependency.py").write_text(f"open({str(marker)!r}, 'a').write('imported\\n')\n")
    rules = ws / "pkg" / "rules.py"
    rules.write_text("import heavy_dependency\n" + rules.read_text())
    # A process of its own: what a no-op build imports is only visible in a fresh interpreter.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    mlbuild_process(ws, "//pkg:total", "-q", env=env)
    assert marker.exists()  # the cold build ran the steps, which imported it
    marker.unlink()
    probe = textwrap.dedent("""
        import sys
        from mlbuild.engine.cli import main
        code = main(["//pkg:total", "-q"])
        leaked = sorted(m for m in sys.modules if m in ("heavy_dependency", "rules", "pkg.rules") or m.startswith("networkx"))
        print("LEAKED", leaked)
        sys.exit(code)
    """)
    out = subprocess.run([sys.executable, "-c", probe], cwd=ws, env=env, capture_output=True, text=True, check=True)
    assert "LEAKED []" in out.stdout
    assert not marker.exists()


def test_errors_are_one_clear_message(ws: Path) -> None:
    cases = {
        "//pkg:nope": "unknown target //pkg:nope",
        "//nopkg:x": "unknown package //nopkg",
        "//pkg:total:x": "target name 'total:x' may hold only",
    }
    for label, message in cases.items():
        proc = mlbuild(ws, label, check=False)
        assert proc.returncode != 0
        assert message in proc.stderr and "Traceback" not in proc.stderr


def _add(ws: Path, text: str) -> None:
    build = ws / "pkg" / "BUILD.py"
    build.write_text(build.read_text() + textwrap.dedent(text))


def test_cycle_is_printed(ws: Path) -> None:
    _add(ws, """
        target(name="a", rule="rules.py:scale", inputs={"numbers": ":b"})
        target(name="b", rule="rules.py:scale", inputs={"numbers": ":a"})
    """)
    proc = mlbuild(ws, "//pkg:a", check=False)
    assert proc.returncode == 2
    assert "dependency cycle: //pkg:a -> //pkg:b -> //pkg:a" in proc.stderr


def test_input_mismatches_fail_before_running(ws: Path) -> None:
    _add(ws, """
        target(name="missing", rule="rules.py:scale")
        target(name="extra", rule="rules.py:source", inputs={"bogus": ":source"}, config={"n": 1})
    """)
    proc = mlbuild(ws, "//pkg:missing", check=False)
    assert proc.returncode == 2 and "//pkg:missing: rule pkg/rules.py:scale needs input 'numbers'" in proc.stderr
    proc = mlbuild(ws, "//pkg:extra", check=False)
    assert proc.returncode == 2 and "has no parameter 'bogus'" in proc.stderr


def test_mistyped_config_and_bad_files(ws: Path) -> None:
    _add(ws, """
        target(name="badcfg", rule="rules.py:scale", inputs={"numbers": ":source"}, config={"factor": "three"})
    """)
    proc = mlbuild(ws, "//pkg:badcfg", check=False)
    assert proc.returncode == 1
    assert "FAILED //pkg:badcfg" in proc.stderr and "config does not fit ScaleConfig" in proc.stderr
    (ws / "pkg" / "BUILD.py").write_text("target(name=)\n")
    proc = mlbuild(ws, "//pkg:x", check=False)
    assert proc.returncode == 2 and "malformed pkg/BUILD.py" in proc.stderr and "Traceback" not in proc.stderr
    (ws / "mlbuild.toml").write_text("[workspace\n")
    proc = mlbuild(ws, "//pkg:x", check=False)
    assert proc.returncode == 2 and "bad workspace configuration" in proc.stderr


def test_failing_step_keeps_what_was_built(ws: Path) -> None:
    _add(ws, """
        target(name="boom", rule="rules.py:boom", inputs={"numbers": ":scaled"})
        target(name="after", rule="rules.py:total", inputs={"numbers": ":boom"})
        target(name="bad_output", rule="rules.py:unencodable", inputs={"numbers": ":source"})
    """)
    proc = mlbuild(ws, "//pkg:after", "--json", check=False)
    assert proc.returncode == 1
    assert "FAILED //pkg:boom" in proc.stderr and "ValueError: the step exploded on purpose" in proc.stderr
    assert 'rules.py", line' in proc.stderr  # the user's traceback, not mlbuild's
    summary = json.loads(proc.stdout)
    assert summary["actions"]["failed"] == 1 and summary["actions"]["skipped"] == 1
    # What was built before the failure is cached.
    assert build_json(ws, "//pkg:scaled")["actions"]["executed"] == 0
    proc = mlbuild(ws, "//pkg:bad_output", check=False)
    assert proc.returncode == 1 and "its output cannot be encoded" in proc.stderr


def test_keep_going_builds_independent_targets(ws: Path) -> None:
    _add(ws, """
        target(name="boom", rule="rules.py:boom", inputs={"numbers": ":source"})
    """)
    proc = mlbuild(ws, "//pkg:boom", "//pkg:text", "-k", "-j", "1", "--json", check=False)
    assert proc.returncode == 1
    summary = json.loads(proc.stdout)
    assert "//pkg:text" in summary["outputs"] and summary["actions"]["failed"] == 1


def test_patterns_relative_labels_and_query(ws: Path) -> None:
    assert build_json(ws, "//...")["actions"]["total"] == 4
    pkg = ws / "pkg"
    assert mlbuild(pkg, ":total", "--json").returncode == 0
    assert mlbuild(ws.parent, "-C", str(ws), "//pkg:all").returncode == 0
    assert mlbuild(ws, "query", "deps(//pkg:total)").stdout.split() == ["//pkg:scaled", "//pkg:source", "//pkg:total"]
    assert mlbuild(ws, "query", "rdeps(//..., //pkg:source)").stdout.split() == ["//pkg:scaled", "//pkg:source", "//pkg:total"]
    assert mlbuild(ws, "query", "//pkg/...").stdout.split() == ["//pkg:scaled", "//pkg:source", "//pkg:text", "//pkg:total"]
    assert mlbuild(ws, "query", "deps(//pkg:total, 1)").stdout.split() == ["//pkg:scaled", "//pkg:total"]


def test_show_clean_and_gc(ws: Path, tmp_cache_dir: Path) -> None:
    build_json(ws, "//pkg:total")
    shown = json.loads(mlbuild(ws, "show", "//pkg:total", "--json").stdout)["//pkg:total"]
    assert shown["value"] == sum(x * 6 for x in range(5))
    assert Path(shown["files"], "total.txt").exists()
    mlbuild(ws, "clean")
    assert not (ws / "mlbuild-out").exists()
    assert build_json(ws, "//pkg:total")["actions"]["executed"] == 0  # the cache survived clean

    build_json(ws, "//pkg:text")  # the most recently used entry from here on
    import time

    from mlbuild.cache.gc import _References
    from mlbuild.cache.store import LocalStore

    store = LocalStore(tmp_cache_dir)
    orphan = store.cas.put_bytes(b"no entry refers to me")
    an_hour_ago = time.time() - 7200
    os.utime(store.cas.path(orphan), (an_hour_ago, an_hour_ago))
    in_flight = store.cas.put_bytes(b"a build in progress wrote me")
    out = mlbuild(ws, "cache", "gc", "--max-size", "1G").stdout
    assert "evicted 0 entries, kept 4" in out
    assert not store.cas.has(orphan) and store.cas.has(in_flight)

    def intact(result: object) -> None:  # outputs, log, manifests and sources all readable
        for digest in _References(store).of(result):  # type: ignore[arg-type]
            store.cas.verified_path(digest)

    for result in store.index.iter_actions():
        intact(result)

    # Room for exactly the newest entry's blobs: everything else goes.
    newest = next(r for r in store.index.iter_actions() if r.label == "//pkg:text")
    room = sum(store.cas.size(d) for d in _References(store).of(newest))
    out = mlbuild(ws, "cache", "gc", "--max-size", str(room), "--min-age", "0").stdout
    assert "evicted 3 entries, kept 1" in out
    assert [r.label for r in store.index.iter_actions()] == ["//pkg:text"]
    intact(newest)
    assert sum(store.cas.size(d) for d in store.cas.digests()) == room
    assert build_json(ws, "//pkg:text")["actions"]["executed"] == 0
    assert build_json(ws, "//pkg:total")["actions"]["executed"] == 3  # evicted: built again
    proc = mlbuild(ws, "cache", "gc", "--max-size", "lots", check=False)
    assert proc.returncode == 2 and "bad size" in proc.stderr


def test_version_and_module_entry_point(ws: Path) -> None:
    out = subprocess.run(["mlbuild", "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("mlbuild ")
    assert "build" in mlbuild_process(ws, "--help").stdout


def test_corrupt_upstream_blob_is_rebuilt_not_used(ws: Path, tmp_cache_dir: Path) -> None:
    first = build_json(ws, "//pkg:total")
    from mlbuild.cache.store import LocalStore

    store = LocalStore(tmp_cache_dir)
    scaled = next(r for r in store.index.iter_actions() if r.label == "//pkg:scaled")
    store.close()
    blob = tmp_cache_dir / "cas" / scaled.outputs[0].digest[:2] / scaled.outputs[0].digest
    blob.chmod(0o644)
    blob.write_bytes(b"\x93garbage")
    # `total` must run again (its code changed), so it needs `scaled`'s bytes, which are corrupt.
    rules = ws / "pkg" / "rules.py"
    rules.write_text(rules.read_text().replace('print("summing"', 'print("adding"'))
    proc = mlbuild(ws, "//pkg:total", "--json")
    summary = json.loads(proc.stdout)
    assert "//pkg:scaled: cached outputs are missing or corrupt; rebuilding it" in proc.stderr
    assert summary["actions"]["executed"] == 2
    assert summary["outputs"]["//pkg:total"] == first["outputs"]["//pkg:total"]


def test_two_steps_that_lose_one_upstream_rebuild_it_once(ws: Path, tmp_cache_dir: Path) -> None:
    build = ws / "pkg" / "BUILD.py"
    build.write_text(build.read_text() + 'target(name="total2", rule="rules.py:total", inputs={"numbers": ":scaled"})\n')
    first = build_json(ws, "//pkg:total", "//pkg:total2")
    from mlbuild.cache.store import LocalStore

    store = LocalStore(tmp_cache_dir)
    scaled = next(r for r in store.index.iter_actions() if r.label == "//pkg:scaled")
    store.close()
    (tmp_cache_dir / "cas" / scaled.outputs[0].digest[:2] / scaled.outputs[0].digest).unlink()
    rules = ws / "pkg" / "rules.py"
    rules.write_text(rules.read_text().replace('print("summing"', 'print("adding"'))
    proc = mlbuild(ws, "//pkg:total", "//pkg:total2", "--json", "-j", "2")
    summary = json.loads(proc.stdout)
    assert proc.stderr.count("//pkg:scaled: cached outputs are missing or corrupt; rebuilding it") == 1
    assert summary["actions"] == {"total": 4, "cached": 1, "remote_hits": 0, "executed": 3, "failed": 0, "skipped": 0}
    assert summary["outputs"] == first["outputs"]


def test_show_never_runs_a_step(ws: Path) -> None:
    proc = mlbuild(ws, "show", "//pkg:total", check=False)
    assert proc.returncode == 2
    assert "//pkg:total is not built, or out of date: run `mlbuild build //pkg:total` first" in proc.stderr
    assert not (ws / "mlbuild-out").exists()
    assert "total" not in mlbuild(ws, "builds", "--json").stdout  # looking is not a build


def test_no_cache_executes_everything_and_agrees(ws: Path) -> None:
    first = build_json(ws, "//pkg:total")
    again = build_json(ws, "//pkg:total", "--no-cache")
    assert again["actions"]["executed"] == 3 and again["outputs"] == first["outputs"]


def test_mistyped_input_names_the_input(ws: Path) -> None:
    rules = ws / "pkg" / "rules.py"
    rules.write_text(rules.read_text() + "\n\n@rule\ndef wants_int(n: int) -> int:\n    return n\n")
    _add(ws, """
        target(name="typed", rule="rules.py:wants_int", inputs={"n": ":source"}, config=None)
    """)
    proc = mlbuild(ws, "//pkg:typed", check=False)
    assert proc.returncode == 1
    assert "FAILED //pkg:typed" in proc.stderr and "input 'n' does not match its annotation" in proc.stderr


def test_cache_dir_from_the_workspace_config(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLBUILD_CACHE_DIR")
    (ws / "mlbuild.toml").write_text("[workspace]\nname = 'test'\n\n[cache]\ndir = '.mlbuild-cache'\n")
    build_json(ws / "pkg", ":source")  # run from a package folder: relative to the workspace root
    assert (ws / ".mlbuild-cache" / "index").is_dir()
    assert not (ws / "pkg" / ".mlbuild-cache").exists()
    monkeypatch.setenv("MLBUILD_CACHE_DIR", str(ws / "env-cache"))  # the environment wins
    assert build_json(ws, "//pkg:source")["actions"]["executed"] == 1


def test_interrupt_stops_running_steps_and_keeps_finished_ones(tmp_path: Path) -> None:
    import signal
    import time

    marker = tmp_path / "slow-finished"
    root = write_workspace(tmp_path / "iws", {"mlbuild.toml": "", "p/rules.py": textwrap.dedent(f"""
        import time
        from pathlib import Path
        from mlbuild import rule

        @rule
        def fast(config: dict) -> int:
            return 1

        @rule
        def slow(x: int) -> int:
            time.sleep(120)
            Path({str(marker)!r}).write_text("done")
            return x
    """), "p/BUILD.py": (
        'from mlbuild import target\n'
        'target(name="fast", rule="rules.py:fast")\n'
        'target(name="slow", rule="rules.py:slow", inputs={"x": ":fast"})\n'
    )})
    log = tmp_path / "build.log"
    with open(log, "w") as out:
        # A process of its own, on the local executor (its workers are what must be stopped);
        # only the mlbuild process gets SIGINT (not its process group), as from `kill -INT`.
        proc = subprocess.Popen([sys.executable, "-m", "mlbuild", "//p:slow"], cwd=root, stdout=out, stderr=out,
                                start_new_session=True)
    deadline = time.monotonic() + 60
    while "running //p:slow" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "running //p:slow" in log.read_text()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130  # the running step was stopped, not waited for
    assert "interrupted; everything finished so far is cached" in log.read_text()
    assert not marker.exists()
    builds = json.loads(mlbuild(root, "builds", "--json").stdout)
    assert builds[0]["status"] == "interrupted"
    assert build_json(root, "//p:fast")["actions"]["executed"] == 0


@pytest.mark.parametrize("retries", [0, 1])
def test_lost_worker_is_retried_per_the_rule(tmp_path: Path, retries: int) -> None:
    marker = tmp_path / "first-attempt"
    root = write_workspace(tmp_path / "rws", {"mlbuild.toml": "", "p/rules.py": textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from mlbuild import rule

        @rule(retries={retries})
        def flaky(config: dict) -> int:
            first = Path({str(marker)!r})
            if not first.exists():
                first.write_text("x")
                os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-step
            return 7
    """), "p/BUILD.py": 'from mlbuild import target\ntarget(name="f", rule="rules.py:flaky")\n'})
    # The local executor: losing a worker process is what this is about.
    proc = mlbuild(root, "//p:f", "--json", check=False, executor="local")
    if retries:
        assert proc.returncode == 0 and json.loads(proc.stdout)["actions"]["executed"] == 1
    else:
        assert proc.returncode == 1 and "its worker process died" in proc.stderr
