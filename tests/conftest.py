"""Fixtures shared by every test: the services tests run against, and a private cache.

Every service fixture is lazy and session-scoped: it starts (or finds) its service the first
time a test asks for it, and a test that does not ask never pays for it. When a service is not
there, a test that needs it is *skipped* on a developer's machine but *fails* in CI (CI=true),
so that CI never goes green by skipping.

| fixture | scope | yields |
| --- | --- | --- |
| ``tmp_cache_dir`` (autouse) | test | a fresh ``Path`` set as ``MLBUILD_CACHE_DIR`` (not created yet) |
| ``docker_host`` | session | the ``DOCKER_HOST`` string (also exported to ``os.environ``) |
| ``test_image`` | session | ``TestImage(name, id, ref)``: the image ``mlbuild-test-python:3.11`` (python3 + msgspec, xxhash, numpy, lmdb); ``ref`` is ``127.0.0.1:5000/…@sha256:…`` or None |
| ``docker_registry`` | session | ``"127.0.0.1:5000"``, a registry ``docker push`` works against |
| ``s3_server`` | session | ``S3Server``: a moto server on loopback with one bucket |
| ``s3_bucket`` | test | the same ``S3Server`` but with a fresh, empty bucket of its own |
| ``ray_local`` | session | ``RayCluster(address, temp_dir, client_port)``: a local Ray head (2 CPUs); ``.client_address`` is its ``ray://`` URL |
| ``ray_nodes`` | session | ``support.ray_nodes.Cluster``: a head with no CPUs and one worker node, ``node_a``, that cannot see the tests' temporary folders (remote-data mode); its ``MLBUILD_IMAGE_WORKSPACE`` is ``hidden / "image-workspace"``, which exists in its namespace only |
| ``chromium_path`` | session | ``"/usr/bin/chromium"`` |
| ``chromium_launch_kwargs`` | session | kwargs for playwright's ``chromium.launch`` |
| ``browser`` | session | a playwright sync ``Browser`` on Debian's chromium |

Tests that use a service are marked automatically (``docker``, ``s3``, ``ray``, ``browser``),
so ``pytest -m "not docker"`` leaves them out.

Docker settings come from ``/tmp/mlbuild-ci.env`` (written by ``.ci/services.sh``); when the
daemon is not running the ``docker_host`` fixture runs that script itself (root needed).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from mlbuild.cache.store import LocalStore

REPO = Path(__file__).resolve().parent.parent
# `from support.cli import mlbuild`: the helpers in tests/support/ are a package on this path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
ENV_FILE = Path(os.environ.get("MLBUILD_CI_ENV", "/tmp/mlbuild-ci.env"))
SERVICES = REPO / ".ci" / "services.sh"
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
BIN = Path(sys.executable).parent  # console scripts of this interpreter (ray, moto_server)

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

_SERVICE_MARKERS = {
    "docker_host": "docker",
    "test_image": "docker",
    "docker_registry": "docker",
    "s3_server": "s3",
    "s3_bucket": "s3",
    "ray_local": "ray",
    "ray_nodes": "ray",
    "chromium_path": "browser",
    "chromium_launch_kwargs": "browser",
    "browser": "browser",
}


# Hypothesis: no per-example deadline and no "input generation is slow" health check. Both
# fail a test on wall time, and this suite shares small machines; the properties stay checked.
settings.register_profile("mlbuild", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("mlbuild")


def pytest_addoption(parser: pytest.Parser) -> None:
    from support import file_durations

    file_durations.addoption(parser)


def pytest_configure(config: pytest.Config) -> None:
    from support import file_durations

    file_durations.configure(config)
    try:
        import flask
    except ImportError:  # no UI extra: no UI tests either
        pass
    else:
        from support.flask_client import BufferedClient

        # Every app.test_client() in the suite closes its responses (see BufferedClient).
        flask.Flask.test_client_class = BufferedClient
    for marker, what in [
        ("docker", "needs the Docker daemon from .ci/services.sh"),
        ("s3", "needs a moto S3 server"),
        ("ray", "needs a local Ray cluster"),
        ("browser", "needs chromium + playwright"),
        ("slow", "takes more than a few seconds"),
    ]:
        config.addinivalue_line("markers", f"{marker}: {what}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for name in sorted({_SERVICE_MARKERS[f] for f in getattr(item, "fixturenames", ())
                            if f in _SERVICE_MARKERS}):
            item.add_marker(name)


def _unavailable(message: str) -> None:
    """Skip on a developer's machine, fail in CI."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tool(name: str) -> str | None:
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name)


def _wait_for(what: str, ready: Any, timeout: float, proc: subprocess.Popen[bytes] | None = None,
              log: Path | None = None) -> None:
    """Poll ``ready()`` until true, at most ``timeout`` s; fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        if ready():
            return
        tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode} before it was ready\n{tail}",
                        pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not ready after {timeout:.0f}s\n{tail}", pytrace=False)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def _stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM the process we started (it shuts its own children down), wait, then SIGKILL
    whatever is left of its process group (it was started in a session of its own)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


@pytest.fixture(scope="session")
def _session_env() -> Iterator[pytest.MonkeyPatch]:
    """Environment changes that last for the whole session (undone at its end)."""
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


# --------------------------------------------------------------------------- private cache


@pytest.fixture
def store(tmp_cache_dir: Path) -> Iterator[LocalStore]:
    """The local store in the test's own cache directory."""
    s = LocalStore(tmp_cache_dir)
    yield s
    s.close()


@pytest.fixture
def ui_server(store: LocalStore) -> Iterator[str]:
    """The UI's app on a loopback port, in a thread of this process; yields its base URL."""
    from support.ui import serve_ui

    with serve_ui(store) as url:
        yield url


@pytest.fixture(autouse=True)
def tmp_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own MLBUILD_CACHE_DIR, so none touches ~/.cache/mlbuild.

    Other MLBUILD_* settings from the caller's shell (a remote cache, a team key…) are
    removed, so a developer's configuration cannot leak into a test.
    """
    for name in list(os.environ):
        if name.startswith("MLBUILD_") and not name.startswith(("MLBUILD_TEST_", "MLBUILD_CI")):
            monkeypatch.delenv(name)
    path = tmp_path / "mlbuild-cache"
    monkeypatch.setenv("MLBUILD_CACHE_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def _close_index_handles() -> Iterator[None]:
    """Commands run in this process leave their LMDB index open (a process would exit): close
    what the test opened and left (see ``support/index_handles.py``)."""
    from support import index_handles

    before = index_handles.snapshot()
    yield
    index_handles.close_opened_since(before)


# --------------------------------------------------------------------------- docker


def _read_env_file() -> dict[str, str]:
    env: dict[str, str] = {}
    if ENV_FILE.exists():
        for line in ENV_FILE.read_text().splitlines():
            line = line.strip()
            if line.startswith("export ") and "=" in line:
                key, _, value = line.removeprefix("export ").partition("=")
                env[key.strip()] = value.strip().strip("'\"")
    return env


def _docker_answers(host: str) -> bool:
    docker = shutil.which("docker")
    if not docker or not host:
        return False
    try:
        return subprocess.run([docker, "info"], env={**os.environ, "DOCKER_HOST": host},
                              capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _run_services(*parts: str) -> None:
    if not SERVICES.exists() or os.geteuid() != 0:
        return
    subprocess.run(["bash", str(SERVICES), *parts], timeout=1200, check=False)


@pytest.fixture(scope="session")
def docker_host(_session_env: pytest.MonkeyPatch) -> str:
    """DOCKER_HOST of a running daemon (started through .ci/services.sh if need be)."""
    env = _read_env_file()
    host = os.environ.get("DOCKER_HOST") or env.get("DOCKER_HOST", "")
    if not _docker_answers(host):
        _run_services("docker")
        env = _read_env_file()
        host = env.get("DOCKER_HOST", "")
    if not _docker_answers(host):
        _unavailable(f"no Docker daemon answers (DOCKER_HOST={host!r}); run .ci/services.sh")
    _session_env.setenv("DOCKER_HOST", host)
    return host


@dataclasses.dataclass(frozen=True)
class TestImage:
    name: str  # "mlbuild-test-python:3.11"
    id: str  # "sha256:…", the local image id
    ref: str | None  # "127.0.0.1:5000/mlbuild-test-python@sha256:…" when a registry runs

    __test__ = False  # not a test class, whatever pytest thinks of the name


@pytest.fixture(scope="session")
def test_image(docker_host: str) -> TestImage:
    """The Python test image (Debian's python3 3.11 + msgspec, xxhash, numpy, lmdb)."""
    name = os.environ.get("MLBUILD_TEST_IMAGE") or _read_env_file().get(
        "MLBUILD_TEST_IMAGE", "mlbuild-test-python:3.11")

    def inspect() -> str | None:
        out = subprocess.run(["docker", "image", "inspect", name, "--format", "{{.Id}}"],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip() if out.returncode == 0 else None

    if inspect() is None:
        _run_services("registry", "image")
    image_id = inspect()
    if image_id is None:
        _unavailable(f"docker image {name} is missing; run .ci/services.sh")
        raise AssertionError("unreachable")
    digests = subprocess.run(
        ["docker", "image", "inspect", name, "--format",
         "{{range .RepoDigests}}{{println .}}{{end}}"],
        capture_output=True, text=True, timeout=30).stdout.split()
    registry = _read_env_file().get("MLBUILD_TEST_REGISTRY")
    ref = next((d for d in digests if registry and d.startswith(registry + "/")), None)
    return TestImage(name=name, id=image_id, ref=ref)


@pytest.fixture(scope="session")
def docker_registry(docker_host: str) -> str:
    """host:port of a local registry (push there to give an image a repo digest)."""
    registry = _read_env_file().get("MLBUILD_TEST_REGISTRY")
    if not registry:
        _run_services("registry")
        registry = _read_env_file().get("MLBUILD_TEST_REGISTRY")
    if not registry:
        _unavailable("no local docker registry (Debian's docker-registry); run .ci/services.sh")
        raise AssertionError("unreachable")
    return registry


# --------------------------------------------------------------------------- s3


@dataclasses.dataclass(frozen=True)
class S3Server:
    endpoint_url: str  # "http://127.0.0.1:PORT"
    bucket: str
    key: str = "testing"
    secret: str = "testing"
    region: str = "us-east-1"

    def url(self, path: str = "") -> str:
        """``s3://bucket/path``"""
        return f"s3://{self.bucket}/{path.lstrip('/')}" if path else f"s3://{self.bucket}"

    @property
    def storage_options(self) -> dict[str, Any]:
        """For ``fsspec.filesystem("s3", **storage_options)`` / s3fs."""
        return {
            "key": self.key,
            "secret": self.secret,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": self.region},
            "skip_instance_cache": True,
        }

    @property
    def env(self) -> dict[str, str]:
        """AWS_* variables that point boto3/s3fs at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
        }

    def filesystem(self) -> Any:
        import s3fs  # type: ignore[import-untyped]

        return s3fs.S3FileSystem(**self.storage_options)

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                            aws_access_key_id=self.key, aws_secret_access_key=self.secret)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A moto S3 server on 127.0.0.1 (a free port) with the bucket ``mlbuild-test``."""
    exe = _tool("moto_server")
    if exe is None:
        _unavailable("moto_server is not installed (pip install 'moto[server]')")
        raise AssertionError("unreachable")
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(endpoint + "/", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # it answered
        except OSError:
            return False

    try:
        _wait_for("moto_server", answers, 60, proc, log)
        server = S3Server(endpoint_url=endpoint, bucket="mlbuild-test")
        server.client().create_bucket(Bucket=server.bucket)
        yield server
    finally:
        _stop(proc)


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> S3Server:
    """``s3_server`` with a fresh, empty bucket for this test only."""
    server = dataclasses.replace(s3_server, bucket=f"t-{uuid.uuid4().hex[:20]}")
    server.client().create_bucket(Bucket=server.bucket)
    return server


# --------------------------------------------------------------------------- ray


@dataclasses.dataclass(frozen=True)
class RayCluster:
    address: str  # "127.0.0.1:PORT" (the GCS), for ray.init(address=...)
    temp_dir: str  # its session/log directory
    client_port: int  # the Ray client server: 10001 (Ray's default) unless that was taken

    @property
    def client_address(self) -> str:
        """``ray://127.0.0.1:PORT``, for a Ray client (``ray.init("ray://…")``)."""
        return f"ray://127.0.0.1:{self.client_port}"


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def ray_client_connect(address: str, attempts: int = 3) -> None:
    """``ray.init(address)`` for a ``ray://`` address, retried when the head's client proxy
    aborts the session setup (a known Ray flake, seen here about one connect in three)."""
    import ray

    for attempt in range(1, attempts + 1):
        try:
            ray.init(address, log_to_driver=False)
            return
        except ConnectionError:
            ray.shutdown()
            if attempt == attempts:
                raise


@pytest.fixture
def ray_client() -> Any:
    """The ``ray_client_connect`` function, for tests that reach Ray through ``ray://``."""
    return ray_client_connect


@pytest.fixture(scope="session")
def ray_local(_session_env: pytest.MonkeyPatch) -> Iterator[RayCluster]:
    """A local Ray head (``ray start --head --block``, 2 CPUs, no dashboard).

    Token authentication is switched off (``RAY_AUTH_MODE=disabled``, also set in this
    process so that ``ray.init(address=...)`` here matches). Stopped at the end of the
    session — only the processes this fixture started, never a ``ray stop``.
    """
    exe = _tool("ray")
    if exe is None:
        _unavailable("ray is not installed")
        raise AssertionError("unreachable")
    _session_env.setenv("RAY_AUTH_MODE", "disabled")
    _session_env.setenv("RAY_USAGE_STATS_ENABLED", "0")
    # The head's client proxy sometimes loses the per-client server it forks (gRPC logs "Other
    # threads are currently calling into gRPC, skipping fork() handlers" and the child exits);
    # the proxy then waits this long before it answers the failed connect. ray_client_connect
    # retries, so a shorter wait keeps the retry cheap.
    _session_env.setenv("RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S", "10")
    port = _free_port()
    # Ray's default client port where it can (tests may assume it), else any free one; the
    # agent's HTTP port is Ray's fixed 52365 by default: pick a free one so that two sessions
    # on one machine do not collide.
    client_port = 10001 if _port_is_free(10001) else _free_port()
    agent_port = _free_port()
    # unix socket paths live under it: keep it short
    temp_dir = tempfile.mkdtemp(prefix="mlbray", dir="/tmp")
    log = Path(temp_dir) / "ray-start.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [exe, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
             "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}",
             "--node-ip-address=127.0.0.1", f"--object-store-memory={512 * 1024 * 1024}",
             f"--ray-client-server-port={client_port}",
             f"--dashboard-agent-listen-port={agent_port}"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ})
    try:
        _wait_for("ray start --head",
                  lambda: "Ray runtime started" in log.read_text(errors="replace"),
                  120, proc, log)
        yield RayCluster(address=f"127.0.0.1:{port}", temp_dir=temp_dir, client_port=client_port)
    finally:
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            ray.shutdown()
        _stop(proc, timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Ray head with no CPUs and one worker node (``node_a``, 2 CPUs) in a mount namespace
    where every test's ``tmp_path`` (the folder above them all) is an empty tmpfs: the worker
    shares nothing with the builds but what they send it. For the tests that only build on it
    (one start for all of them); a test that kills nodes makes a cluster of its own.

    Ray is not shared with ``ray_local``: that one's head runs steps, reading the client's
    files by path (shared mode), which these tests must make impossible."""
    if _tool("ray") is None:
        _unavailable("ray is not installed")
    from support.ray_nodes import Cluster, check_can_hide

    check_can_hide()
    hidden = tmp_path_factory.getbasetemp()
    cluster = Cluster(hidden)
    try:
        # As if it ran from an image whose Dockerfile copied the workspace there: a folder under
        # the tmpfs, so it exists in the worker's namespace only (tests/test_ray_remote_code.py).
        cluster.add_worker("node_a", {"MLBUILD_IMAGE_WORKSPACE": str(hidden / "image-workspace")})
        yield cluster
    finally:
        cluster.stop()


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium (playwright's own browser download does not work here)."""
    path = (os.environ.get("MLBUILD_TEST_CHROMIUM") or shutil.which("chromium")
            or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None))
    if path is None:
        _unavailable("chromium is not installed (apt-get install chromium)")
        raise AssertionError("unreachable")
    return path


@pytest.fixture(scope="session")
def chromium_launch_kwargs(chromium_path: str) -> dict[str, Any]:
    """``playwright.chromium.launch(**chromium_launch_kwargs)``"""
    return {"executable_path": chromium_path, "args": list(CHROMIUM_ARGS), "headless": True}


@pytest.fixture(scope="session")
def browser(chromium_launch_kwargs: dict[str, Any]) -> Iterator[Any]:
    """A playwright (sync API) Browser; open pages with ``browser.new_page()``."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
        raise AssertionError("unreachable") from None
    with sync_playwright() as p:
        b = p.chromium.launch(**chromium_launch_kwargs)
        try:
            yield b
        finally:
            b.close()
