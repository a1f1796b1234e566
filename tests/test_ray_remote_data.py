"""``--executor ray`` in remote-data mode on a real two-namespace cluster: a Ray head that runs
nothing (``--num-cpus=0``) and worker nodes in mount namespaces of their own, where the folder
holding the client's workspaces and caches is an empty tmpfs. The only thing the client and the
workers share is an S3 bucket (moto on loopback).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cli import Run, mlbuild_process
from support.workspace import write_workspace as write

RULES = '''
import os
import time
from pathlib import Path

from mlbuild import rule


@rule
def numbers(config: dict) -> list:
    return list(range(config["n"]))


@rule
def total(xs: list) -> int:
    print("adding", len(xs), "numbers")
    return sum(xs)


@rule
def table(xs: list, out: Path) -> None:
    (out / "table.csv").write_text("\\n".join(str(x) for x in xs))


@rule(retries=1)
def hold_once(xs: list, config: dict) -> int:
    """First attempt: says so and waits to be killed with its node; a retry returns."""
    flag = Path(config["dir"]) / "attempted"
    if not flag.exists():
        flag.write_text(os.uname().nodename)
        (Path(config["dir"]) / "started").write_text("1")
        time.sleep(300)
    return len(xs)


@rule(retries=0)
def hold(xs: list, config: dict) -> int:
    (Path(config["dir"]) / "started").write_text("1")
    time.sleep(300)
    return len(xs)
'''


def _ray() -> str:
    exe = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    if not os.path.exists(exe):
        pytest.fail("ray is not installed (pip install 'ray[client]')")
    return exe


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, ready: Any, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            pytest.fail(f"{what} not ready after {timeout:.0f}s\n{tail}", pytrace=False)
        time.sleep(0.1)


def _same_namespace(pid: int) -> list[int]:
    """Every process in the mount namespace of ``pid`` (a worker node and all it started)."""
    try:
        ns = os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return []
    own = os.readlink("/proc/self/ns/mnt")
    if ns == own:
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


class Cluster:
    """A head (no CPUs) and worker nodes that cannot see ``hidden``; stops what it started."""

    def __init__(self, hidden: Path, env: dict[str, str]) -> None:
        self.hidden = hidden
        self.env = env
        self.dir = Path(tempfile.mkdtemp(prefix="mlbrd", dir="/tmp"))  # short: unix sockets live under it
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.workers: list[subprocess.Popen[bytes]] = []
        log = self.dir / "head.log"
        with log.open("wb") as out:
            self.head = subprocess.Popen(
                [_ray(), "start", "--head", "--block", f"--port={self.port}", "--num-cpus=0",
                 "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={self.dir / 'head'}",
                 "--node-ip-address=127.0.0.1", f"--object-store-memory={256 << 20}",
                 f"--ray-client-server-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        _wait("ray head", lambda: "Ray runtime started" in log.read_text(errors="replace"), 120, log)

    def add_worker(self, name: str) -> subprocess.Popen[bytes]:
        """A worker node in a mount namespace of its own, with an empty tmpfs over ``hidden``."""
        log = self.dir / f"{name}.log"
        cache = self.dir / f"{name}-cache"
        start = (f"mount -t tmpfs none {self.hidden} && exec {_ray()} start --block --address={self.address} "
                 f"--num-cpus=2 --disable-usage-stats --node-ip-address=127.0.0.1 "
                 f"--object-store-memory={128 << 20} --dashboard-agent-listen-port={_free_port()} "
                 f"--resources='{{\"{name}\": 1}}'")
        with log.open("wb") as out:
            proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", start],
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env={**self.env, "MLBUILD_WORKER_CACHE": str(cache)})
        self.workers.append(proc)
        _wait(f"ray worker {name}", lambda: "Ray runtime started" in log.read_text(errors="replace"), 120, log)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL a worker node and everything in its namespace: the node is gone."""
        for pid in _same_namespace(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()

    def nodes(self) -> dict[str, dict[str, float]]:
        code = (f"import json, ray; ray.init(address={self.address!r}, logging_level='ERROR'); "
                "print(json.dumps({n['NodeID']: n['Resources'] for n in ray.nodes() if n['Alive']}))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=self.env, timeout=120)
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))

    def stop(self) -> None:
        for proc in [*self.workers, self.head]:
            self.kill(proc) if proc is not self.head else None
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


@pytest.fixture
def cluster(tmp_path: Path, s3_bucket: Any) -> Iterator[Cluster]:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.fail("these tests need root and unshare(1) (util-linux) for a worker node's own mount namespace")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # the nodes hold no credentials
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
               RAY_health_check_period_ms="500", RAY_health_check_failure_threshold="3")
    c = Cluster(tmp_path, env)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def ws(tmp_path: Path, cluster: Cluster) -> Path:
    shared = cluster.dir / "steps"  # outside the hidden folder: the steps signal the test there
    shared.mkdir()
    return write(tmp_path / "ws", {"pkg/steps.py": RULES, "pkg/BUILD.py": textwrap.dedent(f'''
        from mlbuild import target

        target(name="numbers", rule="steps.py:numbers", config={{"n": 10}})
        target(name="total", rule="steps.py:total", inputs={{"xs": ":numbers"}})
        target(name="table", rule="steps.py:table", inputs={{"xs": ":numbers"}})
        target(name="hold_once", rule="steps.py:hold_once", inputs={{"xs": ":numbers"}}, config={{"dir": "{shared}"}})
        target(name="hold", rule="steps.py:hold", inputs={{"xs": ":numbers"}}, config={{"dir": "{shared}"}})
    ''')}, name="ray-remote-data")


def build(ws: Path, s3: Any, cluster: Cluster | None, *args: str) -> Run:
    env = {**s3.env, "RAY_AUTH_MODE": "disabled"}
    ray = ["--executor", "ray", "--ray-address", cluster.address] if cluster else []
    return mlbuild_process(ws, *args, *ray, "--remote-cache", s3.url("cache"), "--json", check=False, env=env,
                           timeout=300)


def summary(proc: Run) -> dict[str, Any]:
    assert proc.stdout.strip(), proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def remote_entries(s3: Any) -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="cache/ac/")
    return [o["Key"] for o in listing.get("Contents", [])]


def test_steps_run_on_a_worker_that_sees_no_client_file(ws: Path, tmp_path: Path, tmp_cache_dir: Path,
                                                         s3_bucket: Any, cluster: Cluster) -> None:
    worker = cluster.add_worker("node_a")
    # In the worker's namespace the folder holding the client's workspace and cache is empty.
    seen = subprocess.run(["nsenter", "-t", str(worker.pid), "-m", "ls", "-A", str(tmp_path)],
                          capture_output=True, text=True, check=True)
    assert seen.stdout.strip() == ""
    assert (ws / "pkg" / "BUILD.py").exists()

    proc = build(ws, s3_bucket, cluster, "//pkg:total", "//pkg:table")
    assert proc.returncode == 0, proc.stderr
    assert summary(proc)["actions"]["executed"] == 3, proc.stdout
    assert "unavailable" not in proc.stderr and "not publishing" not in proc.stderr, proc.stderr
    ray_outputs = {p.relative_to(ws / "mlbuild-out"): p.read_bytes() for p in (ws / "mlbuild-out").rglob("*")
                   if p.is_file() and not p.name.startswith(".")}  # not the markers: they hold mtimes

    # Ran on the worker node: the results name it.
    nodes = cluster.nodes()
    worker_ids = {nid for nid, res in nodes.items() if "node_a" in res}
    from mlbuild.cache.store import LocalStore

    store = LocalStore(tmp_cache_dir)
    try:
        hosts = {r.label: r.host for r in store.index.iter_actions()}
    finally:
        store.close()
    assert hosts and all(h.rsplit("/", 1)[-1] in worker_ids for h in hosts.values()), (hosts, nodes)
    assert remote_entries(s3_bucket), "the action entries are on the remote"

    # The same targets built locally, from nothing: identical outputs.
    local = write(tmp_path / "local", {p.relative_to(ws).as_posix(): p.read_text()
                                       for p in (ws / "pkg").glob("*.py")}, name="ray-remote-data")
    again = mlbuild_process(local, "//pkg:total", "//pkg:table", "--no-cache", "--json", check=False,
                            env={"MLBUILD_CACHE_DIR": str(tmp_path / "local-cache")})
    assert again.returncode == 0, again.stderr
    local_outputs = {p.relative_to(local / "mlbuild-out"): p.read_bytes()
                     for p in (local / "mlbuild-out").rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert ray_outputs and ray_outputs == local_outputs


def test_node_lost_mid_step_is_retried_on_another_node(ws: Path, s3_bucket: Any, cluster: Cluster) -> None:
    a = cluster.add_worker("node_a")
    first = build(ws, s3_bucket, cluster, "//pkg:numbers")
    assert first.returncode == 0, first.stderr
    cluster.add_worker("node_b")
    started = cluster.dir / "steps" / "started"
    proc = subprocess.Popen([sys.executable, "-m", "mlbuild", "//pkg:hold_once", "--executor", "ray",
                             "--ray-address", cluster.address, "--remote-cache", s3_bucket.url("cache"), "--json"],
                            cwd=ws, env={**os.environ, **s3_bucket.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait("the step's first attempt", started.exists, 180)
        attempted_on = (cluster.dir / "steps" / "attempted").read_text()
        victim = a if attempted_on else a  # the node names are the machine's: find the one running it
        for w in cluster.workers:
            if any(_holds_step(pid) for pid in _same_namespace(w.pid)):
                victim = w
        cluster.kill(victim)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert json.loads(out.decode().strip().splitlines()[-1])["actions"]["executed"] == 1


def _holds_step(pid: int) -> bool:
    try:
        return b"hold" in Path(f"/proc/{pid}/cmdline").read_bytes() or b"run_step_remote" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_node_lost_without_retries_fails_and_keeps_what_was_built(ws: Path, tmp_cache_dir: Path, s3_bucket: Any,
                                                                    cluster: Cluster) -> None:
    a = cluster.add_worker("node_a")
    first = build(ws, s3_bucket, cluster, "//pkg:numbers")
    assert first.returncode == 0, first.stderr
    entries = remote_entries(s3_bucket)
    assert len(entries) == 1
    started = cluster.dir / "steps" / "started"
    proc = subprocess.Popen([sys.executable, "-m", "mlbuild", "//pkg:hold", "--executor", "ray",
                             "--ray-address", cluster.address, "--remote-cache", s3_bucket.url("cache")],
                            cwd=ws, env={**os.environ, **s3_bucket.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait("the step", started.exists, 180)
        cluster.kill(a)
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err.decode()
    assert proc.returncode != 0
    assert "//pkg:hold" in text and "Ray worker died" in text, text
    assert remote_entries(s3_bucket) == entries  # nothing half-written: no entry for the lost step
    again = build(ws, s3_bucket, None, "//pkg:numbers")  # locally, from the local cache
    assert again.returncode == 0, again.stderr
    assert summary(again)["actions"]["cached"] == 1


def test_data_mode_defaults_and_credentials_forwarded() -> None:
    from mlbuild.engine.errors import UserError
    from mlbuild.engine.interfaces import ExecutorContext, RemoteCacheSettings
    from mlbuild.remote.ray_executor import RayOptions, data_mode
    from mlbuild.remote.ray_remote_data import worker_env

    remote = RemoteCacheSettings(url="s3://b/c", timeout=5.0, options={"anon": False})
    with_remote = ExecutorContext(cas_root="/c", workspace="/w", jobs=1, build_id="b", remote=remote)
    without = ExecutorContext(cas_root="/c", workspace="/w", jobs=1, build_id="b")
    assert data_mode(RayOptions(), with_remote, local_cluster=False) == "remote"
    assert data_mode(RayOptions(), with_remote, local_cluster=True) == "shared"  # one machine: the fast path
    assert data_mode(RayOptions(), without, local_cluster=False) == "shared"
    assert data_mode(RayOptions(ray_data="shared"), with_remote, local_cluster=False) == "shared"
    assert data_mode(RayOptions(ray_data="remote"), with_remote, local_cluster=True) == "remote"
    with pytest.raises(UserError, match="needs a remote cache"):
        data_mode(RayOptions(ray_data="remote"), without, local_cluster=False)
    env = {"AWS_SECRET_ACCESS_KEY": "s", "HOME": "/root", "MLBUILD_CACHE_KEY": "k"}
    assert worker_env(remote, env) == {"AWS_SECRET_ACCESS_KEY": "s", "MLBUILD_REMOTE_OPTIONS": '{"anon": false}'}
    assert worker_env(remote, env, forward_credentials=False) == {}  # a KubeRay Secret holds them
