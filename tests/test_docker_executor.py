"""``--executor docker`` and image digests in keys, against the real Docker engine of
``.ci/services.sh`` and the test image (Debian's python3 + msgspec, xxhash, numpy, lmdb).

Images for the tests are built locally ``FROM`` the test image (Docker Hub is unreachable), under
names unique to the test run, and removed afterwards.
"""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mlbuild.cache.records import KeySpec
from mlbuild.engine.errors import UserError
from mlbuild.engine.interfaces import ActionSpec
from mlbuild.remote.docker_executor import container_limits
from mlbuild.remote.images import resolve_image, split_reference
from mlbuild.rules.rule import Resources, RuleOptions

from support.cli import Run
from support.cli import mlbuild as run_mlbuild
from support.workspace import write_workspace as write

RULES = '''
import os
import sys
from pathlib import Path

from mlbuild import Resources, rule


@rule
def where(config: dict, out: Path) -> dict:
    (out / "hello.txt").write_text("hello from " + config["name"])
    payload = Path("/payload.txt")
    return {
        "in_container": Path("/.dockerenv").exists(),
        "python": sys.version.split()[0],
        "payload": payload.read_text() if payload.exists() else None,
    }


@rule
def uses(data: dict, src: Path, upstream: Path) -> str:
    print("reading", src.name)
    return src.read_text().strip() + "|" + (upstream / "hello.txt").read_text() + "|" + str(data["payload"])


@rule
def scribble(src: Path) -> str:
    print("about to write into the workspace")
    (src.parent / "scribbled.txt").write_text("no")
    return "wrote"


def _read(*candidates: str) -> str:
    for path in candidates:
        if os.path.exists(path):
            return open(path).read().split()[0]
    return "?"


@rule(resources=Resources(cpus=0.5, memory="256Mi"))
def limits(config: dict) -> dict:
    # cgroup v1 and v2 file names
    return {
        "memory": _read("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"),
        "cpu_quota": _read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu.max"),
    }
'''


def build_file(image: str) -> str:
    return textwrap.dedent(f'''
        from mlbuild import target, File

        target(name="where", rule="steps.py:where", config={{"name": "where"}}, image="{image}")
        target(name="uses", rule="steps.py:uses", image="{image}",
               inputs={{"data": ":where", "src": File("data.txt"), "upstream": ":where"}})
        target(name="scribble", rule="steps.py:scribble", image="{image}", inputs={{"src": File("data.txt")}})
        target(name="limits", rule="steps.py:limits", image="{image}", config={{"n": 1}})
        target(name="hostonly", rule="steps.py:where", config={{"name": "host"}})
    ''')


def write_workspace(root: Path, image: str) -> Path:
    return write(root / "ws", {"pkg/steps.py": RULES, "pkg/data.txt": "source data\n", "pkg/BUILD.py": build_file(image)},
                 name="docker-test")


def mlbuild(ws: Path, *args: str) -> Run:
    """``mlbuild ARGS`` in this process; each test names its executor."""
    return run_mlbuild(ws, *args, check=False, executor=None)


def summary(proc: Run) -> dict[str, Any]:
    assert proc.stdout.strip(), proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def value(ws: Path, name: str) -> Any:
    return msgspec.msgpack.decode((ws / "mlbuild-out" / "pkg" / f"{name}.value.msgpack").read_bytes())


@pytest.fixture(scope="module")
def client(docker_host: str) -> Any:
    import docker

    return docker.from_env()


class ImageMaker:
    """Builds small images FROM the test image under a tag unique to this test run."""

    def __init__(self, client: Any, base: str) -> None:
        self.client = client
        self.base = base
        self.repo = f"mlbuild-test-step-{uuid.uuid4().hex[:10]}"
        self.made: set[str] = set()

    def build(self, payload: str, tag: str = "latest", base: str | None = None) -> str:
        dockerfile = f"FROM {base or self.base}\nCOPY payload.txt /payload.txt\n".encode()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in (("Dockerfile", dockerfile), ("payload.txt", payload.encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = 0  # the same content gives the same layer, whenever it is built
                tar.addfile(info, io.BytesIO(data))
        buf.seek(0)
        ref = f"{self.repo}:{tag}"
        image, _ = self.client.images.build(fileobj=buf, custom_context=True, tag=ref, rm=True)
        self.made.add(image.id)
        return str(image.id)

    def remove(self) -> None:
        for image_id in self.made:
            try:
                self.client.images.remove(image_id, force=True)
            except Exception:  # shared by tags already removed: fine
                pass


@pytest.fixture
def images(client: Any, test_image: Any) -> Iterator[ImageMaker]:
    maker = ImageMaker(client, test_image.name)
    try:
        yield maker
    finally:
        maker.remove()


# ---------------------------------------------------------------- image resolution


def test_split_reference_normalizes_docker_hub_names() -> None:
    assert split_reference("python:3.11") == ("docker.io/library/python", "3.11", None)
    assert split_reference("acme/train") == ("docker.io/acme/train", None, None)
    assert split_reference("127.0.0.1:5000/x/y:1@sha256:ab") == ("127.0.0.1:5000/x/y", "1", "sha256:ab")
    assert split_reference("localhost/y") == ("localhost/y", None, None)


def test_resolve_image_gives_id_or_repo_digest(test_image: Any) -> None:
    assert resolve_image(test_image.name) == test_image.id  # a local tag: the image id
    if test_image.ref is not None:
        repo = test_image.ref.split("@")[0]
        # a registry reference: the registry's manifest digest, pinned to that repository
        assert resolve_image(f"{repo}:3.11") == test_image.ref
        assert resolve_image(test_image.ref) == test_image.ref
    with pytest.raises(UserError, match="is not in the Docker engine"):
        resolve_image(f"mlbuild-no-such-image-{uuid.uuid4().hex[:8]}:1")


def test_retagging_to_new_content_rebuilds_identical_content_does_not(tmp_path: Path, images: ImageMaker) -> None:
    first_id = images.build("v1")
    ws = write_workspace(tmp_path, f"{images.repo}:latest")
    first = mlbuild(ws, "//pkg:where", "--executor", "docker", "--json")
    assert first.returncode == 0, first.stderr
    assert summary(first)["actions"]["executed"] == 1
    assert value(ws, "where")["payload"] == "v1"

    assert images.build("v1") == first_id  # identical content: the same image id...
    same = mlbuild(ws, "//pkg:where", "--executor", "docker", "--json")
    assert summary(same)["actions"] == {**summary(same)["actions"], "executed": 0, "cached": 1}  # ...no rebuild

    assert images.build("v2") != first_id  # the same tag, new content
    moved = mlbuild(ws, "//pkg:where", "--executor", "docker", "--json")
    assert moved.returncode == 0, moved.stderr
    assert summary(moved)["actions"]["executed"] == 1
    assert value(ws, "where")["payload"] == "v2"


# ---------------------------------------------------------------- the docker executor


def test_steps_run_in_their_image_and_share_keys_with_other_executors(tmp_path: Path, test_image: Any) -> None:
    ws = write_workspace(tmp_path, test_image.name)
    built = mlbuild(ws, "//pkg:uses", "//pkg:where", "--executor", "docker", "--json")
    assert built.returncode == 0, built.stderr
    assert summary(built)["actions"]["executed"] == 2
    where = value(ws, "where")
    assert where["in_container"] is True and where["python"].startswith("3.11")
    assert value(ws, "uses") == "source data|hello from where|None"
    assert (ws / "mlbuild-out" / "pkg" / "where" / "hello.txt").read_text() == "hello from where"

    # Same targets, same image: the local executor (and any other) hits the same keys.
    local = mlbuild(ws, "//pkg:uses", "//pkg:where", "--executor", "local", "--json")
    assert local.returncode == 0, local.stderr
    assert summary(local)["actions"]["cached"] == 2 and summary(local)["actions"]["executed"] == 0
    assert summary(local)["outputs"] == summary(built)["outputs"]


def test_workspace_is_read_only_and_logs_reach_the_cache(tmp_path: Path, test_image: Any) -> None:
    ws = write_workspace(tmp_path, test_image.name)
    proc = mlbuild(ws, "//pkg:scribble", "--executor", "docker")
    assert proc.returncode == 1
    assert "//pkg:scribble" in proc.stderr and "Read-only file system" in proc.stderr
    assert "about to write into the workspace" in proc.stderr  # the step's log, read from the CAS
    assert not (ws / "pkg" / "scribbled.txt").exists()


def test_resources_become_container_limits(tmp_path: Path, test_image: Any) -> None:
    ws = write_workspace(tmp_path, test_image.name)
    proc = mlbuild(ws, "//pkg:limits", "--executor", "docker")
    assert proc.returncode == 0, proc.stderr
    got = value(ws, "limits")
    assert got["memory"] in ("268435456",)  # 256Mi
    assert got["cpu_quota"] in ("50000",)  # half of a 100000us period


def test_container_limits_for_gpus() -> None:
    spec = ActionSpec(
        key="k", label="//p:t", rule_file="r.py", rule_func="f", inputs=[], config=None,
        options=RuleOptions(resources=Resources(cpus=2, memory="4Gi", gpus=1)),
        key_spec=KeySpec(schema=1, rule="r", code="c", inputs={}, config=None, env="e"),
        workspace="/w", image="sha256:" + "0" * 64,
    )
    limits = container_limits(spec)
    assert limits["nano_cpus"] == 2_000_000_000 and limits["mem_limit"] == 4 * 2**30
    (request,) = limits["device_requests"]
    assert request["Count"] == 1 and request["Capabilities"] == [["gpu"]]  # what `--gpus 1` sends


def test_missing_image_fails_before_anything_runs(tmp_path: Path, test_image: Any) -> None:
    ws = write_workspace(tmp_path, test_image.name)
    missing = f"mlbuild-no-such-image-{uuid.uuid4().hex[:8]}:1"
    build = (ws / "pkg" / "BUILD.py").read_text().replace(
        'target(name="limits", rule="steps.py:limits", image="' + test_image.name,
        'target(name="limits", rule="steps.py:limits", image="' + missing)
    (ws / "pkg" / "BUILD.py").write_text(build)
    proc = mlbuild(ws, "//pkg:uses", "//pkg:limits", "--executor", "docker", "--json")
    assert proc.returncode == 2
    assert f"//pkg:limits: image '{missing}' is not in the Docker engine" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (ws / "mlbuild-out").exists()  # nothing ran


def test_container_that_cannot_start_is_a_clear_error(tmp_path: Path, client: Any, test_image: Any) -> None:
    # An image with no python3 in it: the container cannot start its command.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"FROM scratch\nCOPY x /x\n"
        for name, content in (("Dockerfile", data), ("x", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    buf.seek(0)
    tag = f"mlbuild-test-nopython-{uuid.uuid4().hex[:8]}:1"
    image, _ = client.images.build(fileobj=buf, custom_context=True, tag=tag, rm=True)
    try:
        ws = write_workspace(tmp_path, tag)
        proc = mlbuild(ws, "//pkg:where", "--executor", "docker")
        assert proc.returncode == 1
        assert "//pkg:where" in proc.stderr and "its container could not start" in proc.stderr
        assert "Traceback" not in proc.stderr
    finally:
        client.images.remove(image.id, force=True)


def test_step_without_image_is_refused_by_docker_executor(tmp_path: Path, test_image: Any) -> None:
    ws = write_workspace(tmp_path, test_image.name)
    proc = mlbuild(ws, "//pkg:hostonly", "--executor", "docker")
    assert proc.returncode == 1
    assert "//pkg:hostonly" in proc.stderr and "has none" in proc.stderr


def test_docker_network_option(tmp_path: Path, test_image: Any) -> None:
    ws = write_workspace(tmp_path, test_image.name)
    isolated = mlbuild(ws, "//pkg:where", "--executor", "docker", "--docker-network", "none")
    assert isolated.returncode == 0, isolated.stderr
    missing = mlbuild(ws, "//pkg:where", "--executor", "docker", "--no-cache", "--docker-network", "mlbuild-no-such-net")
    assert missing.returncode == 1
    assert "its container could not start" in missing.stderr and "mlbuild-no-such-net" in missing.stderr
