"""The test infrastructure itself works: each service fixture of conftest.py, for real."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest


def test_tmp_cache_dir_is_private(tmp_cache_dir: Path) -> None:
    assert os.environ["MLBUILD_CACHE_DIR"] == str(tmp_cache_dir)
    assert not str(tmp_cache_dir).startswith(str(Path.home() / ".cache"))


def test_docker_runs_the_test_image(docker_host: str, test_image: Any) -> None:
    assert os.environ["DOCKER_HOST"] == docker_host
    code = "import sys, msgspec, xxhash, numpy, lmdb; print(sys.version_info[:2])"
    out = subprocess.run(["docker", "run", "--rm", "--network=none", test_image.name,
                          "python3", "-c", code],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(3, 11)"
    assert test_image.id.startswith("sha256:")


def test_docker_sdk_and_repo_digest(docker_host: str, test_image: Any,
                                    docker_registry: str) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=docker_host)
    try:
        assert test_image.ref is not None and "@sha256:" in test_image.ref
        assert test_image.ref.startswith(docker_registry + "/")
        # a step pinned by digest runs, through the SDK the docker executor uses
        out = client.containers.run(test_image.ref, ["python3", "-c", "print(6 * 7)"],
                                    remove=True, network_disabled=True)
        assert out.strip() == b"42"
    finally:
        client.close()


def test_s3_roundtrip(s3_bucket: Any) -> None:
    fs = s3_bucket.filesystem()
    fs.pipe(s3_bucket.url("cas/ab/cdef"), b"hello")
    assert fs.cat(s3_bucket.url("cas/ab/cdef")) == b"hello"
    assert fs.ls(s3_bucket.url("cas/ab"), detail=False) == [f"{s3_bucket.bucket}/cas/ab/cdef"]


def test_s3_buckets_are_per_test(s3_bucket: Any, s3_server: Any) -> None:
    assert s3_bucket.bucket != s3_server.bucket
    assert s3_bucket.filesystem().ls(s3_bucket.url(), detail=False) == []


def test_ray_runs_a_task(ray_local: Any, ray_client: Any) -> None:
    ray = pytest.importorskip("ray")
    ray.init(address=ray_local.address, log_to_driver=False)
    try:
        @ray.remote(num_cpus=1)
        def square(x: int) -> int:
            return x * x

        assert ray.get([square.remote(i) for i in range(8)]) == [i * i for i in range(8)]
        assert ray.cluster_resources().get("CPU") == 2
    finally:
        ray.shutdown()
    # and through the Ray client server (ray://), as a remote cluster is reached
    ray_client(ray_local.client_address)
    try:
        assert ray.get(ray.remote(lambda: 7).remote()) == 7
    finally:
        ray.shutdown()


def test_chromium_screenshot(browser: Any, tmp_path: Path) -> None:
    page = browser.new_page()
    try:
        page.goto("data:text/html,<h1 id=t>mlbuild</h1>"
                  "<script>document.title=location.hash</script>#run=abc&tab=output")
        assert page.inner_text("#t") == "mlbuild"
        assert page.title() == "#run=abc&tab=output"
        shot = tmp_path / "shot.png"
        page.screenshot(path=str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        page.close()
