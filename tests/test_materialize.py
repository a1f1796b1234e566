"""Materializing into mlbuild-out/: atomic under a kill at the copy, self-healing, safe when two
builds of one workspace run at once (issue 17, part 1)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec
import pytest

from support.cli import Run, mlbuild
from support.workspace import write_workspace

RULES = '''
from pathlib import Path
from mlbuild import rule


@rule
def big(config: dict, out: Path) -> dict:
    (out / "a.txt").write_text(str(config["mb"]))
    (out / "blob.bin").write_bytes(bytes([config["mb"] % 256]) * (config["mb"] << 20))
    return {"mb": config["mb"]}
'''

BUILD = 'from mlbuild import target\ntarget(name="t", rule="rules.py:big", config={"mb": 3})\n'

# Runs mlbuild with the copy of blob.bin into mlbuild-out/ dying half-way: a temp file with
# part of the bytes is left, then the process is SIGKILLed.
KILL_AT_COPY = '''
import os, signal, sys
from pathlib import Path
import mlbuild.engine.run.materialize as m

orig = m.copy_verified

def copy(cas, digest, target, executable=False):
    if Path(target).name == "blob.bin":
        Path(str(target) + ".mlbuild-tmp").write_bytes(b"x" * 1000)
        os.kill(os.getpid(), signal.SIGKILL)
    return orig(cas, digest, target, executable)

if __name__ == "__main__":  # the local executor's spawned workers import this file too
    m.copy_verified = copy
    from mlbuild.engine.cli import main
    sys.exit(main(sys.argv[1:]))
'''


def run(ws: Path, *args: str, script: Path | None = None, check: bool = True) -> Run:
    """``mlbuild ARGS`` in this process; with ``script``, that script in a process of its own
    (one the test expects to die)."""
    if script is None:
        return mlbuild(ws, *args, check=check)
    proc = subprocess.run([sys.executable, str(script), *args], cwd=ws, capture_output=True, text=True, timeout=300)
    result = Run(list(args), proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(f"mlbuild {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return result


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return write_workspace(tmp_path / "ws", {"big/BUILD.py": BUILD, "big/rules.py": RULES}, name="mat")


def assert_outputs(ws: Path, mb: int) -> None:
    out = ws / "mlbuild-out" / "big"
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [".mlbuild-lock", ".mlbuild-results", "t.value.msgpack", "t/a.txt", "t/blob.bin"]
    assert (out / "t" / "a.txt").read_text() == str(mb)
    blob = (out / "t" / "blob.bin").read_bytes()
    assert len(blob) == mb << 20 and set(blob) == {mb % 256}
    assert msgspec.msgpack.decode((out / "t.value.msgpack").read_bytes()) == {"mb": mb}


def test_a_kill_at_the_copy_leaves_nothing_a_later_build_trusts(ws: Path, tmp_path: Path) -> None:
    run(ws, "build", "//big:t")
    assert_outputs(ws, 3)
    script = tmp_path / "kill_at_copy.py"
    script.write_text(KILL_AT_COPY)
    killed = run(ws, "build", "//big:t", "--set", "//big:t.mb=4", script=script, check=False)
    assert killed.returncode == -9, killed.stderr
    # The previous config again: a cache hit, and mlbuild-out/ holds exactly its outputs.
    again = run(ws, "build", "//big:t", "--json")
    assert '"cached":1' in again.stdout and '"executed":0' in again.stdout
    assert_outputs(ws, 3)
    # The interrupted config: a cache hit too (it was built and recorded before the copy).
    run(ws, "build", "//big:t", "--set", "//big:t.mb=4")
    assert_outputs(ws, 4)


def test_damaged_outputs_are_copied_again(ws: Path) -> None:
    run(ws, "build", "//big:t")
    out = ws / "mlbuild-out" / "big"
    (out / "t" / "blob.bin").unlink()
    run(ws, "build", "//big:t")
    assert_outputs(ws, 3)
    # Same size, other bytes (a user's edit): the mtime shows it.
    (out / "t" / "a.txt").write_text("9")
    run(ws, "build", "//big:t")
    assert_outputs(ws, 3)
    # A foreign file in the output folder (a killed copy's temp file) goes.
    (out / "t" / "blob.bin.mlbuild-tmp").write_bytes(b"")
    run(ws, "build", "//big:t")
    assert_outputs(ws, 3)
    (out / "t.value.msgpack").write_bytes(b"junk")
    run(ws, "build", "//big:t")
    assert_outputs(ws, 3)


def test_a_marker_from_an_older_mlbuild_is_not_trusted(ws: Path) -> None:
    run(ws, "build", "//big:t")
    out = ws / "mlbuild-out" / "big"
    markers = msgspec.json.decode((out / ".mlbuild-results").read_bytes())
    (out / "t" / "blob.bin").unlink()
    (out / ".mlbuild-results").write_bytes(msgspec.json.encode({"t": markers["targets"]["t"]["result"]}))
    run(ws, "build", "//big:t")
    assert_outputs(ws, 3)


def test_two_builds_of_one_workspace_at_once(ws: Path) -> None:
    run(ws, "build", "//big:t")
    for _ in range(3):
        run(ws, "clean")
        # Processes of their own: builds of one workspace from separate processes take turns.
        procs = [subprocess.Popen([sys.executable, "-m", "mlbuild", "build", "//big:t"], cwd=ws,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
            assert "Traceback" not in err
        assert_outputs(ws, 3)


def test_interrupt_at_the_copy_in_process(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while copying: the marker no longer names the old result, staging goes later."""
    from mlbuild.engine.cli import main
    from mlbuild.engine.run import materialize

    monkeypatch.chdir(ws)
    assert main(["build", "-q", "//big:t"]) == 0
    orig = materialize.copy_verified

    def interrupted(cas: object, digest: str, target: Path, executable: bool = False) -> None:
        if target.name == "blob.bin":
            raise KeyboardInterrupt
        orig(cas, digest, target, executable)  # type: ignore[arg-type]

    monkeypatch.setattr(materialize, "copy_verified", interrupted)
    assert main(["build", "-q", "//big:t", "--set", "//big:t.mb=2"]) == 130
    out = ws / "mlbuild-out" / "big"
    assert any(p.name.startswith(".mlbuild-staging-") for p in out.iterdir())
    monkeypatch.setattr(materialize, "copy_verified", orig)
    assert main(["build", "-q", "//big:t"]) == 0
    assert_outputs(ws, 3)
    assert main(["build", "-q", "//big:t", "--set", "//big:t.mb=2"]) == 0
    assert_outputs(ws, 2)
    assert not [p for p in out.iterdir() if p.name.startswith(".mlbuild-staging-")]


def test_outputs_of_every_kind_and_a_value_only_target(tmp_path: Path) -> None:
    root = write_workspace(tmp_path / "ws2", {"mlbuild.toml": "", "p/r.py": textwrap.dedent('''
        from pathlib import Path
        from mlbuild import rule

        @rule
        def v(config: dict) -> int:
            return config["n"]

        @rule
        def f(config: dict, out: Path) -> None:
            (out / "sub").mkdir()
            (out / "sub" / "x.txt").write_text(str(config["n"]))
    '''), "p/BUILD.py": (
        'from mlbuild import target\n'
        'target(name="v", rule="r.py:v", config={"n": 1})\n'
        'target(name="f", rule="r.py:f", config={"n": 1})\n')})
    run(root, "build", "//p:all")
    out = root / "mlbuild-out" / "p"
    assert (out / "f" / "sub" / "x.txt").read_text() == "1"
    assert msgspec.msgpack.decode((out / "v.value.msgpack").read_bytes()) == 1
    os.unlink(out / "f" / "sub" / "x.txt")
    run(root, "build", "//p:f")
    assert (out / "f" / "sub" / "x.txt").read_text() == "1"
