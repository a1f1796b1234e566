"""``--executor ray`` end to end through the CLI, against a real local Ray head (``ray_local``).

Every build is a ``mlbuild`` subprocess that connects to the session's one Ray head with
``--ray-address``, so Ray starts once for all these tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from mlbuild.remote.resources import memory_bytes, ray_options
from mlbuild.rules.rule import Resources

from support.cli import Run, mlbuild_process
from support.workspace import NUMBERS_RULES
from support.workspace import write_workspace as write

RULES = NUMBERS_RULES + '''
import os
import signal
import time
from pathlib import Path

from mlbuild import Resources


@rule
def boom(xs: list) -> int:
    raise ValueError("the step exploded on purpose")


@rule(retries=1)
def die_once(config: dict) -> str:
    marker = Path(config["marker"])
    if not marker.exists():
        marker.write_text("first attempt")
        os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-step
    return "survived " + marker.read_text()


@rule(retries=0)
def die_always(config: dict) -> str:
    os.kill(os.getpid(), signal.SIGKILL)
    return "unreachable"


@rule(resources=Resources(cpus=2, memory="64Mi"))
def what_ray_gave(config: dict) -> dict:
    import ray

    return ray.get_runtime_context().get_assigned_resources()


@rule
def slow(xs: list, config: dict) -> int:
    Path(config["started"]).write_text("started")
    deadline = time.monotonic() + 120
    while not Path(config["release"]).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("never released")
        time.sleep(0.05)
    return len(xs)
'''


def write_workspace(root: Path, tmp: Path) -> Path:
    return write(root / "ws", {"pkg/steps.py": RULES, "pkg/BUILD.py": textwrap.dedent(f'''
        from mlbuild import target

        target(name="numbers", rule="steps.py:numbers", config={{"n": 10}})
        target(name="total", rule="steps.py:total", inputs={{"xs": ":numbers"}})
        target(name="boom", rule="steps.py:boom", inputs={{"xs": ":numbers"}})
        target(name="die_once", rule="steps.py:die_once", config={{"marker": "{tmp / "died-once"}"}})
        target(name="die_always", rule="steps.py:die_always", config={{"n": 1}})
        target(name="resources", rule="steps.py:what_ray_gave", config={{"n": 1}})
        target(name="slow", rule="steps.py:slow", inputs={{"xs": ":numbers"}},
               config={{"started": "{tmp / "started"}", "release": "{tmp / "release"}"}})
    ''')}, name="ray-test")


def mlbuild(ws: Path, *args: str) -> Run:
    # A process of its own: the Ray driver (ray.init and what it installs) stays out of pytest's.
    return mlbuild_process(ws, *args, check=False)


def summary(proc: Run) -> dict[str, Any]:
    assert proc.stdout.strip(), proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return write_workspace(tmp_path, tmp_path)


def test_ray_options_map_resources_and_retries() -> None:
    opts = ray_options(Resources(cpus=0.5, memory="1Gi", gpus=1), retries=3)
    assert opts == {"num_cpus": 0.5, "num_gpus": 1, "max_retries": 3, "retry_exceptions": False,
                    "memory": 2**30}
    assert "memory" not in ray_options(Resources(), retries=0)
    assert memory_bytes("512M") == 512_000_000 and memory_bytes("2g") == 2 * 10**9
    with pytest.raises(ValueError, match="not a quantity"):
        memory_bytes("lots")


def test_build_on_ray_then_local_is_all_cached(ws: Path, ray_local: Any) -> None:
    first = mlbuild(ws, "//pkg:total", "--executor", "ray", "--ray-address", ray_local.address, "--json")
    assert first.returncode == 0, first.stderr
    assert summary(first)["actions"]["executed"] == 2
    assert (ws / "mlbuild-out" / "pkg").is_dir()
    # The key does not depend on the executor: the local executor finds everything cached.
    again = mlbuild(ws, "//pkg:total", "--executor", "local", "--json")
    assert again.returncode == 0, again.stderr
    counts = summary(again)["actions"]
    assert counts["executed"] == 0 and counts["cached"] == 2
    assert summary(again)["outputs"] == summary(first)["outputs"]


def test_failing_step_is_a_clear_error_and_upstream_stays_cached(ws: Path, ray_local: Any) -> None:
    proc = mlbuild(ws, "//pkg:boom", "--executor", "ray", "--ray-address", ray_local.address)
    assert proc.returncode == 1
    assert "//pkg:boom" in proc.stderr and "the step exploded on purpose" in proc.stderr
    assert "mlbuild/engine/" not in proc.stderr  # the step's own frames only
    again = mlbuild(ws, "//pkg:numbers", "--executor", "ray", "--ray-address", ray_local.address, "--json")
    assert summary(again)["actions"]["cached"] == 1


def test_worker_killed_mid_step_is_retried(ws: Path, tmp_path: Path, ray_local: Any) -> None:
    proc = mlbuild(ws, "//pkg:die_once", "--executor", "ray", "--ray-address", ray_local.address, "--json")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "died-once").read_text() == "first attempt"  # the first attempt did die
    value = ws / "mlbuild-out" / "pkg" / "die_once.value.msgpack"
    assert b"survived first attempt" in value.read_bytes()


def test_worker_killed_without_retries_fails_the_step(ws: Path, ray_local: Any) -> None:
    proc = mlbuild(ws, "//pkg:die_always", "--executor", "ray", "--ray-address", ray_local.address)
    assert proc.returncode == 1
    assert "//pkg:die_always" in proc.stderr and "Ray worker died" in proc.stderr


def test_step_gets_its_resources_as_ray_resources(ws: Path, ray_local: Any) -> None:
    proc = mlbuild(ws, "//pkg:resources", "--executor", "ray", "--ray-address", ray_local.address)
    assert proc.returncode == 0, proc.stderr
    import msgspec

    got = msgspec.msgpack.decode((ws / "mlbuild-out" / "pkg" / "resources.value.msgpack").read_bytes())
    assert got["CPU"] == 2.0 and got["memory"] == 64 * 2**20


def test_unreachable_ray_address_is_one_clear_error(ws: Path, tmp_cache_dir: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = mlbuild(ws, "//pkg:total", "--executor", "ray", "--ray-address", f"127.0.0.1:{port}")
    assert proc.returncode == 2
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"mlbuild exited ({proc.returncode}) before {path.name}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path.name} did not appear within {timeout:.0f}s")
        time.sleep(0.05)


def test_interrupted_build_resumes_from_the_cache(ws: Path, tmp_path: Path, ray_local: Any) -> None:
    cmd = [sys.executable, "-m", "mlbuild", "//pkg:slow", "--executor", "ray", "--ray-address", ray_local.address]
    proc = subprocess.Popen(cmd, cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(tmp_path / "started", proc)  # //pkg:numbers is done and recorded; slow is running
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err

    (tmp_path / "started").unlink()
    (tmp_path / "release").write_text("go")
    again = mlbuild(ws, "//pkg:slow", "--executor", "ray", "--ray-address", ray_local.address, "--json")
    assert again.returncode == 0, again.stderr
    counts = summary(again)["actions"]
    assert counts["cached"] == 1 and counts["executed"] == 1  # only the step that was cut off ran
    assert (tmp_path / "started").exists()


def test_local_ray_started_for_the_build(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No address: mlbuild starts a local Ray of ``-j`` CPUs for the build and stops it after.
    A step asking for more CPUs than that fails at once instead of waiting forever."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    proc = mlbuild(ws, "//pkg:total", "//pkg:resources", "--executor", "ray", "-j", "1", "-k", "--json")
    assert proc.returncode == 1, proc.stderr
    assert summary(proc)["actions"]["executed"] == 2
    assert "//pkg:resources" in proc.stderr and "needs 2 CPUs" in proc.stderr
    assert os.environ.get("RAY_ADDRESS") is None


def test_ray_cluster_is_exported_without_importing_ray() -> None:
    code = (
        "import sys, mlbuild\n"
        "assert 'RayCluster' in mlbuild.__all__\n"
        "from mlbuild import RayCluster\n"
        "assert RayCluster.__module__ == 'mlbuild.remote.ray_cluster'\n"
        "assert 'ray' not in sys.modules, 'import mlbuild loaded ray'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
