"""``--executor ray`` in remote-data mode on a real two-namespace cluster: a Ray head that runs
nothing (``--num-cpus=0``) and worker nodes in mount namespaces of their own, where the folder
holding the client's workspaces and caches is an empty tmpfs. The only thing the client and the
workers share is an S3 bucket (moto on loopback).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cli import Run, mlbuild_process
from support.ray_nodes import Cluster, check_can_hide, same_namespace, wait
from support.workspace import NUMBERS_RULES
from support.workspace import write_workspace as write

RULES = NUMBERS_RULES + '''
import os
import time
from pathlib import Path


@rule
def scaled(xs: list, config: dict) -> int:
    return sum(xs) * config["k"]


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


@pytest.fixture
def cluster(tmp_path: Path, s3_bucket: Any) -> Iterator[Cluster]:
    """A cluster of this test's own (it kills nodes), hiding ``tmp_path``; no worker yet."""
    check_can_hide()
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def signals() -> Iterator[Path]:
    """A folder the steps and the test both see (outside the hidden one): steps signal there."""
    path = Path(tempfile.mkdtemp(prefix="mlbrs", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ws(tmp_path: Path, signals: Path) -> Path:
    shared = signals
    return write(tmp_path / "ws", {"pkg/steps.py": RULES, "pkg/BUILD.py": textwrap.dedent(f'''
        from mlbuild import target

        target(name="numbers", rule="steps.py:numbers", config={{"n": 10}})
        target(name="total", rule="steps.py:total", inputs={{"xs": ":numbers"}})
        target(name="table", rule="steps.py:table", inputs={{"xs": ":numbers"}})
        target(name="scaled", rule="steps.py:scaled", inputs={{"xs": ":numbers"}}, config={{"k": 2}})
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


def outputs_of(ws: Path) -> dict[Path, bytes]:
    """``mlbuild-out/``'s files and bytes (not the markers: they hold mtimes)."""
    out = ws / "mlbuild-out"
    return {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")}


def hosts_of(cache: Path) -> dict[str, str]:
    """label -> the host (``hostname/node-id``) of every result in the local cache at ``cache``."""
    from mlbuild.cache.store import LocalStore

    store = LocalStore(cache)
    try:
        return {r.label: r.host for r in store.index.iter_actions()}
    finally:
        store.close()


def result_of(cache: Path, label: str) -> Any:
    from mlbuild.cache.store import LocalStore

    store = LocalStore(cache)
    try:
        (result,) = [r for r in store.index.iter_actions() if r.label == label]
        return result
    finally:
        store.close()


def test_steps_run_on_a_worker_that_sees_no_client_file(ws: Path, tmp_path: Path, tmp_cache_dir: Path,
                                                         s3_bucket: Any, ray_nodes: Cluster) -> None:
    # In the worker's namespace the folder holding every test's workspace and cache is empty.
    assert (ws / "pkg" / "BUILD.py").exists() and not ray_nodes.sees("node_a", ws)
    assert ray_nodes.sees("node_a", ray_nodes.dir)  # (the question can be answered yes)

    proc = build(ws, s3_bucket, ray_nodes, "//pkg:total", "//pkg:table")
    assert proc.returncode == 0, proc.stderr
    result = summary(proc)
    assert result["actions"]["executed"] == 3, proc.stdout
    assert "unavailable" not in proc.stderr and "not publishing" not in proc.stderr, proc.stderr
    # What moved, in the summary: the client's uploads (the input root, no input blob: every
    # input was built on the cluster) and the workers' downloads and pushes.
    moved = result["executor"]
    assert moved["name"] == "ray" and moved["data"] == "remote", moved
    assert moved["client_bytes_up"] > 0 and moved["client_blobs_up"] >= 2, moved  # steps.py, the root
    assert moved["worker_bytes_down"] > 0 and moved["worker_bytes_up"] > 0, moved
    assert "ray (remote data): client " in proc.stderr, proc.stderr

    # Ran on the worker node: the results name it.
    hosts = hosts_of(tmp_cache_dir)
    worker_ids = ray_nodes.node_ids("node_a")
    assert hosts and all(h.rsplit("/", 1)[-1] in worker_ids for h in hosts.values()), (hosts, worker_ids)
    assert remote_entries(s3_bucket), "the action entries are on the remote"

    # The same targets built locally, from nothing: identical outputs.
    local = write(tmp_path / "local", {p.relative_to(ws).as_posix(): p.read_text()
                                       for p in (ws / "pkg").glob("*.py")}, name="ray-remote-data")
    again = mlbuild_process(local, "//pkg:total", "//pkg:table", "--no-cache", "--json", check=False,
                            env={"MLBUILD_CACHE_DIR": str(tmp_path / "local-cache")})
    assert again.returncode == 0, again.stderr
    assert outputs_of(ws) and outputs_of(ws) == outputs_of(local)


def test_input_lost_locally_and_on_the_remote_reruns_its_producer(ws: Path, tmp_cache_dir: Path, s3_bucket: Any,
                                                                   ray_nodes: Cluster) -> None:
    first = build(ws, s3_bucket, ray_nodes, "//pkg:scaled")
    assert first.returncode == 0, first.stderr
    assert summary(first)["actions"]["executed"] == 2
    numbers = result_of(tmp_cache_dir, "//pkg:numbers")
    (ref,) = numbers.outputs
    # Its bytes gone everywhere the client looks: here (never downloaded: only //pkg:scaled was
    # asked for) and on the remote. Its entries stay: the build learns of the loss on submitting.
    from mlbuild.cache.cas import CAS

    assert not CAS(tmp_cache_dir / "cas").has(ref.digest)
    s3_bucket.client().delete_object(Bucket=s3_bucket.bucket, Key=f"cache/cas/{ref.digest[:2]}/{ref.digest}")
    # The consumer changes, its producer does not.
    build_py = ws / "pkg" / "BUILD.py"
    build_py.write_text(build_py.read_text().replace('config={"k": 2}', 'config={"k": 3}'))

    second = build(ws, s3_bucket, ray_nodes, "//pkg:scaled")
    assert second.returncode == 0, second.stderr
    assert summary(second)["actions"]["executed"] == 2, second.stdout  # the producer ran again, then it
    assert "//pkg:numbers: cached outputs are missing or corrupt" in second.stderr, second.stderr
    assert "FAILED" not in second.stderr
    import msgspec

    assert msgspec.msgpack.decode((ws / "mlbuild-out" / "pkg" / "scaled.value.msgpack").read_bytes()) == 135
    assert result_of(tmp_cache_dir, "//pkg:numbers").outputs == [ref]  # the same bytes, made again
    assert s3_bucket.client().head_object(Bucket=s3_bucket.bucket, Key=f"cache/cas/{ref.digest[:2]}/{ref.digest}")


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "resnet"


@pytest.mark.slow  # trains the ResNet twice (on the cluster, then here): 18 s on a quiet machine, 2-5x under load
def test_the_resnet_example_builds_on_the_cluster(tmp_path: Path, tmp_cache_dir: Path, s3_bucket: Any,
                                                  ray_nodes: Cluster) -> None:
    """The example end to end in remote-data mode: every step on the worker node, which sees
    neither the example's folder nor the client's cache; outputs identical to a local build's."""
    ws = shutil.copytree(EXAMPLE, tmp_path / "resnet", ignore=shutil.ignore_patterns("mlbuild-out", "__pycache__"))
    assert not ray_nodes.sees("node_a", ws)
    proc = build(ws, s3_bucket, ray_nodes, "//...", "--ray-data", "remote")
    assert proc.returncode == 0, proc.stderr
    on_cluster = summary(proc)
    assert on_cluster["actions"]["executed"] == on_cluster["actions"]["total"] == 5, proc.stdout
    hosts = hosts_of(tmp_cache_dir)
    worker_ids = ray_nodes.node_ids("node_a")
    assert len(hosts) == 5 and all(h.rsplit("/", 1)[-1] in worker_ids for h in hosts.values()), (hosts, worker_ids)
    moved = on_cluster["executor"]
    assert moved["worker_bytes_down"] > 0 and moved["client_bytes_up"] > 0, moved

    local = shutil.copytree(EXAMPLE, tmp_path / "local", ignore=shutil.ignore_patterns("mlbuild-out", "__pycache__"))
    here = mlbuild_process(local, "//...", "--no-cache", "--json", check=False,
                           env={"MLBUILD_CACHE_DIR": str(tmp_path / "local-cache")})
    assert here.returncode == 0, here.stderr
    assert summary(here)["outputs"] == on_cluster["outputs"]  # every target's digests
    assert outputs_of(ws) == outputs_of(local)


def test_node_lost_mid_step_is_retried_on_another_node(ws: Path, s3_bucket: Any, signals: Path,
                                                       cluster: Cluster) -> None:
    cluster.add_worker("node_a")
    first = build(ws, s3_bucket, cluster, "//pkg:numbers")
    assert first.returncode == 0, first.stderr
    cluster.add_worker("node_b")
    def running_it() -> Any:
        # The node running it (both nodes have the machine's hostname: look at the processes).
        (victim,) = [w for w in cluster.workers if any(_holds_step(pid) for pid in same_namespace(w.pid))]
        return victim

    code, out, err = _build_killing_a_node(ws, s3_bucket, cluster, signals, "//pkg:hold_once", running_it)
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["actions"]["executed"] == 1


def _build_killing_a_node(ws: Path, s3_bucket: Any, cluster: Cluster, signals: Path, label: str,
                          victim: Callable[[], Any]) -> tuple[int, str, str]:
    """Build ``label`` (``--json``) on ``cluster``; once its step says it started, kill the node
    ``victim()`` names. The build's exit code, stdout and stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "mlbuild", label, "--executor", "ray",
                             "--ray-address", cluster.address, "--remote-cache", s3_bucket.url("cache"), "--json"],
                            cwd=ws, env={**os.environ, **s3_bucket.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait("the step to start", (signals / "started").exists, 180)
        cluster.kill(victim())
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out.decode(), err.decode()


def _holds_step(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"hold" in cmdline or b"run_step_remote" in cmdline


def test_node_lost_without_retries_fails_and_keeps_what_was_built(ws: Path, tmp_cache_dir: Path, s3_bucket: Any,
                                                                    signals: Path, cluster: Cluster) -> None:
    a = cluster.add_worker("node_a")
    first = build(ws, s3_bucket, cluster, "//pkg:numbers")
    assert first.returncode == 0, first.stderr
    entries = remote_entries(s3_bucket)
    assert len(entries) == 1
    code, _, text = _build_killing_a_node(ws, s3_bucket, cluster, signals, "//pkg:hold", lambda: a)
    assert code != 0
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


class _Session:
    """Stands in for a Ray session where only the executor's bookkeeping is under test."""

    local = False

    class ray:  # noqa: N801 (the attribute the executor reads)
        @staticmethod
        def remote(fn: Any) -> Any:
            return fn

    def node_capacity(self) -> dict[str, float]:
        return {}


def test_needs_shared_path_follows_the_data_mode(tmp_path: Path) -> None:
    from mlbuild.engine.interfaces import ExecutorContext, RemoteCacheSettings
    from mlbuild.remote.kuberay.executor import KubeRayExecutor
    from mlbuild.remote.ray_executor import RayExecutor, RayOptions

    remote = RemoteCacheSettings(url=(tmp_path / "remote").as_uri(), timeout=5.0)
    with_remote = ExecutorContext(cas_root=str(tmp_path / "cas"), workspace=str(tmp_path), jobs=1, build_id="b",
                                  remote=remote)
    without = ExecutorContext(cas_root=str(tmp_path / "cas"), workspace=str(tmp_path), jobs=1, build_id="b")
    session: Any = _Session()
    assert RayExecutor(with_remote, RayOptions(), session=session).needs_shared_path is False
    assert RayExecutor(with_remote, RayOptions(ray_data="shared"), session=session).needs_shared_path is True
    assert RayExecutor(without, RayOptions(), session=session).needs_shared_path is True
    assert KubeRayExecutor(with_remote).needs_shared_path is False
    assert KubeRayExecutor(without).needs_shared_path is True
    assert RayExecutor.needs_shared_path is True  # before the mode is known: what it may need
