"""A Ray cluster whose worker nodes cannot see the client's files, for the remote-data tests.

A head that runs nothing (``--num-cpus=0``) and worker nodes started in mount namespaces of
their own (``unshare -m``), each with an empty tmpfs over ``hidden``: the folder holding the
client's workspaces and caches. ``sees(name, path)`` asks a worker's namespace about a path. The nodes
get no AWS credentials: what they read from the remote they read with what the build sends.

``conftest.py``'s session fixture ``ray_nodes`` keeps one such cluster (one worker node,
``node_a``) for every test that only builds on it; a test that kills nodes makes its own
(``tests/test_ray_remote_data.py``'s ``cluster`` fixture). Every process started here is stopped
by ``stop`` (the worker nodes with everything in their namespaces).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def ray_exe() -> str:
    exe = str(Path(sys.executable).parent / "ray")
    if not os.path.exists(exe):
        exe = shutil.which("ray") or exe
    if not os.path.exists(exe):
        pytest.fail("ray is not installed (pip install 'ray[client]')")
    return exe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(what: str, ready: Callable[[], bool], timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            pytest.fail(f"{what} not ready after {timeout:.0f}s\n{tail}", pytrace=False)
        time.sleep(0.1)


def same_namespace(pid: int) -> list[int]:
    """Every process in the mount namespace of ``pid`` (a worker node and all it started)."""
    try:
        ns = os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return []
    if ns == os.readlink("/proc/self/ns/mnt"):
        return [pid]
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/mnt") == ns:
                    out.append(int(entry))
            except OSError:
                pass
    return out


def node_env() -> dict[str, str]:
    """The nodes' environment: this one without credentials or mlbuild settings (a test's
    private cache, say), Ray's token auth off and dead nodes noticed within ~2 s."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "MLBUILD_")) and k not in ("RAY_ADDRESS", "KUBERNETES_SERVICE_HOST")}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
               RAY_health_check_period_ms="500", RAY_health_check_failure_threshold="3")
    return env


def check_can_hide() -> None:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.fail("these tests need root and unshare(1) (util-linux) for a worker node's own mount namespace")


class Cluster:
    """A head (no CPUs) and worker nodes that cannot see ``hidden``; ``stop`` ends them all."""

    def __init__(self, hidden: Path, env: dict[str, str] | None = None) -> None:
        self.hidden = hidden
        self.env = env if env is not None else node_env()
        self.dir = Path(tempfile.mkdtemp(prefix="mlbrd", dir="/tmp"))  # short: unix sockets live under it
        self.port = free_port()
        self.client_port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.workers: list[subprocess.Popen[bytes]] = []  # in the order they were added
        self.named: dict[str, subprocess.Popen[bytes]] = {}
        log = self.dir / "head.log"
        with log.open("wb") as out:
            self.head = subprocess.Popen(
                [ray_exe(), "start", "--head", "--block", f"--port={self.port}", "--num-cpus=0",
                 "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={self.dir / 'head'}",
                 "--node-ip-address=127.0.0.1", f"--object-store-memory={256 << 20}",
                 f"--ray-client-server-port={self.client_port}", f"--dashboard-agent-listen-port={free_port()}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env=self.env)
        try:
            wait("ray head", lambda: "Ray runtime started" in log.read_text(errors="replace"), 120, log)
        except BaseException:
            self.stop()
            raise

    @property
    def client_address(self) -> str:
        """``ray://127.0.0.1:PORT``: the head's Ray client server (what KubeRay's head service exposes)."""
        return f"ray://127.0.0.1:{self.client_port}"

    def worker_cache(self, name: str) -> Path:
        """The worker node's own cache (``MLBUILD_WORKER_CACHE``), seen from here."""
        return self.dir / f"{name}-cache"

    def add_worker(self, name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """A worker node in a mount namespace of its own, with an empty tmpfs over ``hidden``,
        and a custom resource ``name`` (so ``nodes()`` tells which node is which); ``env``: more
        variables for it (what a KubeRay pod gets from its manifest)."""
        log = self.dir / f"{name}.log"
        start = (f"mount -t tmpfs none {self.hidden} && exec {ray_exe()} start --block --address={self.address} "
                 f"--num-cpus=2 --disable-usage-stats --node-ip-address=127.0.0.1 "
                 f"--object-store-memory={128 << 20} --dashboard-agent-listen-port={free_port()} "
                 f"--resources='{{\"{name}\": 1}}'")
        with log.open("wb") as out:
            proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", start],
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True,
                                    env={**self.env, **(env or {}), "MLBUILD_WORKER_CACHE": str(self.worker_cache(name))})
        self.workers.append(proc)
        self.named[name] = proc
        wait(f"ray worker {name}", lambda: "Ray runtime started" in log.read_text(errors="replace"), 120, log)
        return proc

    def sees(self, name: str, path: Path) -> bool:
        """Whether ``path`` exists in worker ``name``'s mount namespace."""
        seen = subprocess.run(["nsenter", "-t", str(self.named[name].pid), "-m", "test", "-e", str(path)],
                              capture_output=True, timeout=60)
        return seen.returncode == 0

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL a worker node and everything in its namespace: the node is gone."""
        for pid in same_namespace(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()

    def nodes(self) -> dict[str, dict[str, float]]:
        """Node id -> resources, of every live node."""
        code = (f"import json, ray; ray.init(address={self.address!r}, logging_level='ERROR'); "
                "print(json.dumps({n['NodeID']: n['Resources'] for n in ray.nodes() if n['Alive']}))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=self.env, timeout=120)
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))

    def node_ids(self, name: str) -> set[str]:
        """The Ray node ids of worker ``name``."""
        return {nid for nid, res in self.nodes().items() if name in res}

    def stop(self) -> None:
        for proc in self.workers:
            self.kill(proc)
        self.head.terminate()
        try:
            self.head.wait(20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.head.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
