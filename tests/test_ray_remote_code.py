"""Code in remote-data mode (``remote/ray_remote_data.py``), on a real cluster whose worker node
cannot see the client's files: a step gets exactly the project files its code digest and its
last trace cover; a dynamic import no trace has seen yet costs one resubmission with the whole
project, said in the output; a step with an image runs the image's copy of the workspace
(``MLBUILD_IMAGE_WORKSPACE``), checked file by file against the workspace's digests, and
nothing of the project's source is uploaded for it.

The worker node's "image workspace" is a copy of the project made inside its own mount
namespace (it exists nowhere else), so what it runs can only come from there.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from mlbuild.cache.digest import digest_file

from support.cli import Run, mlbuild_process
from support.ray_nodes import Cluster
from support.workspace import write_workspace as write

FILES = {
    # A facade: `from lib import scale` passes through lib/__init__.py to lib/impl.py.
    "lib/__init__.py": "from lib.impl import scale\n",
    "lib/impl.py": "def scale(x):\n    return x * 3\n",
    "lib/unused.py": "UNUSED = 'no step imports this'\n",
    "lib/plugins/fast.py": "def run(xs):\n    return [x + 1 for x in xs]\n",
    "pkg/steps.py": textwrap.dedent('''
        import importlib

        from mlbuild import rule
        from lib import scale


        @rule
        def numbers(config: dict) -> list:
            return [scale(x) for x in range(config["n"])]


        @rule
        def plugin(xs: list, config: dict) -> list:
            return importlib.import_module("lib.plugins." + config["name"]).run(xs)
    '''),
    "pkg/BUILD.py": textwrap.dedent('''
        from mlbuild import target

        target(name="numbers", rule="steps.py:numbers", config={"n": 5})
        target(name="plugin", rule="steps.py:plugin", inputs={"xs": ":numbers"}, config={"name": "fast", "tag": TAG})
    '''),
    "img/train.py": textwrap.dedent('''
        import importlib

        from mlbuild import rule
        from lib.impl import scale


        @rule
        def train(config: dict) -> list:
            return [scale(x) for x in range(config["n"])]


        @rule
        def plugged(config: dict) -> list:
            return importlib.import_module("lib.plugins." + config["name"]).run([1, 2])
    '''),
    "img/BUILD.py": textwrap.dedent('''
        from mlbuild import target

        target(name="train", rule="train.py:train", config={"n": N}, image=IMAGE)
        target(name="plugged", rule="train.py:plugged", config={"name": "fast"}, image=IMAGE)
    '''),
}


def workspace(root: Path, tag: int = 1, n: int = 4, image: str | None = None) -> Path:
    files = dict(FILES)
    files["pkg/BUILD.py"] = files["pkg/BUILD.py"].replace("TAG", str(tag))
    files["img/BUILD.py"] = files["img/BUILD.py"].replace("N", str(n)).replace("IMAGE", repr(image))
    return write(root, files, name="ray-remote-code")


class ImageCluster(NamedTuple):
    cluster: Cluster
    image_ws: Path  # MLBUILD_IMAGE_WORKSPACE of the worker node: a folder only it sees
    worker_pid: int

    def in_worker(self, script: str) -> None:
        """Run ``script`` (sh) in the worker node's mount namespace."""
        subprocess.run(["nsenter", "-t", str(self.worker_pid), "-m", "sh", "-c", script], check=True, timeout=60)


@pytest.fixture
def image_cluster(ray_nodes: Cluster) -> ImageCluster:
    """The session's cluster (``ray_nodes``): a head with no CPUs and one worker node where
    every test's folder is an empty tmpfs and ``MLBUILD_IMAGE_WORKSPACE`` names a folder that
    exists only there: what an image's Dockerfile would have copied the workspace to."""
    if shutil.which("nsenter") is None:
        pytest.fail("these tests need nsenter(1) (util-linux) to enter the worker node's mount namespace")
    return ImageCluster(ray_nodes, ray_nodes.hidden / "image-workspace", ray_nodes.named["node_a"].pid)


def build(ws: Path, s3: Any, cluster: Cluster, *args: str) -> Run:
    return mlbuild_process(ws, *args, "--executor", "ray", "--ray-address", cluster.address,
                           "--remote-cache", s3.url("cache"), "--json", check=False,
                           env={**s3.env, "RAY_AUTH_MODE": "disabled"}, timeout=300)


def summary(proc: Run) -> dict[str, Any]:
    assert proc.stdout.strip(), proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def on_remote(s3: Any, ws: Path, rel: str) -> bool:
    digest = digest_file(ws / rel)[0]
    listing = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=f"cache/cas/{digest[:2]}/{digest}")
    return bool(listing.get("Contents"))


def remote_entries(s3: Any) -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="cache/ac/")
    return sorted(o["Key"] for o in listing.get("Contents", []))


def outputs(ws: Path) -> dict[Path, bytes]:
    out = ws / "mlbuild-out"
    return {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")}


def local_outputs(root: Path, *labels: str, **kwargs: Any) -> dict[Path, bytes]:
    local = workspace(root, **kwargs)
    proc = mlbuild_process(local, *labels, "--no-cache", check=False, env={"MLBUILD_CACHE_DIR": str(root / "cache")})
    assert proc.returncode == 0, proc.stderr
    return outputs(local)


def test_a_step_gets_exactly_its_code_digest_files(tmp_path: Path, tmp_cache_dir: Path, s3_bucket: Any,
                                                  image_cluster: ImageCluster) -> None:
    cluster = image_cluster.cluster
    ws = workspace(tmp_path / "ws")
    proc = build(ws, s3_bucket, cluster, "//pkg:numbers")
    assert proc.returncode == 0, proc.stderr
    assert summary(proc)["actions"]["executed"] == 1
    # The rule, the facade it imports through and the module defining what it uses; nothing else.
    for rel in ("pkg/steps.py", "lib/__init__.py", "lib/impl.py"):
        assert on_remote(s3_bucket, ws, rel), rel
    for rel in ("lib/unused.py", "lib/plugins/fast.py", "img/train.py", "pkg/BUILD.py"):
        assert not on_remote(s3_bucket, ws, rel), rel
    assert outputs(ws) == local_outputs(tmp_path / "local", "//pkg:numbers")


def test_a_dynamic_import_is_resubmitted_once_then_known_from_the_trace(
        tmp_path: Path, tmp_cache_dir: Path, s3_bucket: Any, image_cluster: ImageCluster) -> None:
    cluster = image_cluster.cluster
    ws = workspace(tmp_path / "ws")
    first = build(ws, s3_bucket, cluster, "//pkg:plugin")
    assert first.returncode == 0, first.stderr
    assert summary(first)["actions"]["executed"] == 2
    # importlib.import_module("lib.plugins." + name): no static digest sees lib/plugins/fast.py.
    assert "//pkg:plugin: its run lacked lib/plugins" in first.stderr, first.stderr
    assert "submitted again with every .py file of the project" in first.stderr
    assert "//pkg:numbers: its run lacked" not in first.stderr
    assert outputs(ws) == local_outputs(tmp_path / "local", "//pkg:plugin")

    # Another key for the same target: the trace of its last run names the plugin's file.
    workspace(ws, tag=2)
    second = build(ws, s3_bucket, cluster, "//pkg:plugin")
    assert second.returncode == 0, second.stderr
    assert (summary(second)["actions"]["executed"], summary(second)["actions"]["cached"]) == (1, 1)
    assert "submitted again" not in second.stderr, second.stderr


def test_an_image_step_runs_the_image_copy_and_ships_no_source(
        tmp_path: Path, tmp_cache_dir: Path, s3_bucket: Any, image_cluster: ImageCluster,
        test_image: Any) -> None:
    cluster, image_ws = image_cluster.cluster, image_cluster.image_ws
    ws = workspace(tmp_path / "ws", image=test_image.name)
    # The image's copy of the workspace, made where only the worker node sees it.
    staged = cluster.dir / "image-copy"
    shutil.copytree(ws, staged, dirs_exist_ok=True)
    image_cluster.in_worker(f"rm -rf {image_ws} && mkdir -p {image_ws} && cp -a {staged}/. {image_ws}/")
    assert not image_ws.exists()  # not in the client's namespace

    # //img:plugged imports a plugin no static digest sees: resubmitted with every file by
    # digest, each checked against the image's copy, and still no source bytes uploaded.
    proc = build(ws, s3_bucket, cluster, "//img:train", "//img:plugged")
    assert proc.returncode == 0, proc.stderr
    assert summary(proc)["actions"]["executed"] == 2
    assert "//img:plugged: its run lacked lib/plugins" in proc.stderr, proc.stderr
    for rel in ("img/train.py", "lib/impl.py", "lib/__init__.py", "lib/plugins/fast.py"):
        assert not on_remote(s3_bucket, ws, rel), f"{rel} was uploaded for an image step"
    assert outputs(ws) == local_outputs(tmp_path / "local", "//img:train", "//img:plugged", image=test_image.name)
    entries = remote_entries(s3_bucket)
    assert len(entries) == 2

    # A stale image: its copy of lib/impl.py is not the workspace's. The step never runs.
    image_cluster.in_worker(f"printf 'def scale(x):\\n    return x * 4\\n' > {image_ws}/lib/impl.py")
    workspace(ws, n=6, image=test_image.name)
    stale = build(ws, s3_bucket, cluster, "//img:train")
    assert stale.returncode != 0
    assert ("//img:train" in stale.stderr
            and "the image's copy of lib/impl.py differs from the workspace's: rebuild the image" in stale.stderr), \
        stale.stderr
    assert remote_entries(s3_bucket) == entries  # nothing stored


def test_an_image_step_on_a_worker_not_from_an_image_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlbuild.remote import ray_remote_data

    monkeypatch.delenv(ray_remote_data.ENV_IMAGE_WORKSPACE, raising=False)
    with pytest.raises(ray_remote_data.ImageMismatch, match="MLBUILD_IMAGE_WORKSPACE is unset"):
        ray_remote_data._from_image({"lib/x.py": "0" * 32}, "sha256:abc", str(tmp_path))
    image = tmp_path / "image"
    (image / "lib").mkdir(parents=True)
    monkeypatch.setenv(ray_remote_data.ENV_IMAGE_WORKSPACE, str(image))
    with pytest.raises(ray_remote_data.ImageMismatch, match="has no lib/x.py"):
        ray_remote_data._from_image({"lib/x.py": "0" * 32}, "sha256:abc", str(tmp_path / "scratch"))


def test_an_image_step_cannot_import_from_the_image_workspace_unchecked(tmp_path: Path) -> None:
    """An image whose Dockerfile puts its workspace on PYTHONPATH: while an image step runs, that
    folder is off sys.path, so only the checked copies in the scratch folder can be imported."""
    from mlbuild.remote.ray_remote_data import _off_path

    image = tmp_path / "image"
    image.mkdir()
    (image / "unchecked_probe.py").write_text("VALUE = 1\n")
    sys.path.append(str(image))
    try:
        with _off_path(str(image)):
            assert str(image) not in sys.path
            with pytest.raises(ModuleNotFoundError):
                importlib.import_module("unchecked_probe")
        assert str(image) in sys.path
        assert importlib.import_module("unchecked_probe").VALUE == 1
    finally:
        sys.path.remove(str(image))
        sys.modules.pop("unchecked_probe", None)


def test_missing_paths_read_from_a_run_error() -> None:
    from mlbuild.remote.ray_remote_data import missing_paths

    assert missing_paths("ModuleNotFoundError: No module named 'lib.plugins.fast'") == \
        ["lib/plugins/fast", "lib/plugins/fast.py"]
    assert missing_paths("ImportError: cannot import name 'fast' from 'lib.plugins' (unknown location)") == \
        ["lib/plugins/fast", "lib/plugins/fast.py"]
    assert missing_paths("FileNotFoundError: [Errno 2] No such file or directory: 'data/x.csv'") == ["data/x.csv"]
    assert missing_paths("FileNotFoundError: [Errno 2] No such file or directory: '/etc/x'") == []


def test_a_worker_reports_inputs_gone_from_the_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A blob the client saw on the remote, gone when the worker fetches it: the outcome names
    it in ``lost_inputs`` (the build re-runs its producer) instead of failing as infrastructure."""
    import msgspec

    from mlbuild.cache.digest import digest_bytes
    from mlbuild.cache.records import ArtifactRef, KeySpec
    from mlbuild.engine.interfaces import ActionSpec, InputSpec
    from mlbuild.remote import ray_remote_data
    from mlbuild.remote.fsspec_cache import FsspecRemoteCache
    from mlbuild.rules.rule import RuleOptions

    monkeypatch.setenv(ray_remote_data.ENV_WORKER_CACHE, str(tmp_path / "worker"))
    remote = FsspecRemoteCache(str(tmp_path / "remote"))

    def put(data: bytes) -> str:
        digest = digest_bytes(data)
        (tmp_path / digest).write_bytes(data)
        remote.push_blob(digest, str(tmp_path / digest))
        return digest

    root = put(msgspec.msgpack.encode(ray_remote_data.InputRoot(files={})))
    present, missing = put(b"\x01"), digest_bytes(b"\x02")
    spec = ActionSpec(
        key="k" * 32, label="//p:t", rule_file="r.py", rule_func="f",
        inputs=[InputSpec("a", refs=[ArtifactRef("value", present, "msgpack", 1)]),
                InputSpec("b", refs=[ArtifactRef("value", missing, "msgpack", 1)])],
        config={}, options=RuleOptions(), key_spec=KeySpec(1, "r.py:f", "c" * 32, {}, {}, "e" * 32),
        workspace="/nowhere",
    )
    task = ray_remote_data.RemoteTask(url=str(tmp_path / "remote"), timeout=10.0, input_root=root)
    raw = ray_remote_data.run_step_remote(msgspec.msgpack.encode(spec), msgspec.msgpack.encode(task))
    outcome = msgspec.msgpack.decode(raw, type=ray_remote_data.TaskResult).outcome
    assert (outcome.error_kind, outcome.lost_inputs) == ("input", [missing]), outcome.error
    assert missing in (outcome.error or "")
