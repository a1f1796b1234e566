"""The remote never holds the process: a remote that accepts connections and never answers, one
that answers 500 to everything, and a pool call stuck forever (issue 17, part 4).

Exit times are checked against a bound that is generous next to the configured timeout (1 s)
and small next to what a stuck call used to cost (the interpreter waited ~460 s for it).
"""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cli import Run, mlbuild_process
from support.remote_ws import write_workspace

BOUND = 60.0  # seconds; the build itself takes a few, the remote timeout is 1


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An HTTP endpoint that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for c in held:
            c.close()
        server.close()


class _Fail500(http.server.BaseHTTPRequestHandler):
    def _fail(self) -> None:
        body = b"<Error><Code>InternalError</Code><Message>down for the test</Message></Error>"
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _fail

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def failing_endpoint() -> Iterator[str]:
    """An HTTP endpoint that answers 500 to every request."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Fail500)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def timed_build(ws: Path, endpoint: str, *extra: str) -> tuple[Run, float]:
    """A build against ``endpoint`` in a process of its own: how long the process lasts, exit
    included (a transport thread left hanging would hold it), is what is measured."""
    env = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL_S3": endpoint,
           "MLBUILD_CACHE_DIR": str(ws.parent / "cache")}
    started = time.monotonic()
    proc = mlbuild_process(ws, "build", "//pipe:model", "--json", "--remote-cache", "s3://bucket/c",
                           "--remote-timeout", "1", *extra, check=False, env=env, timeout=600)
    return proc, time.monotonic() - started


def check(proc: Run, seconds: float, executed: int) -> None:
    assert proc.returncode == 0, proc.stderr
    assert seconds < BOUND, f"the build held the process {seconds:.0f}s with a 1s remote timeout"
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["actions"]["executed"] == executed
    assert summary["remote"]["state"] == "unavailable"
    assert "Traceback" not in proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning: remote cache" in line]
    assert len(warnings) == 1, proc.stderr  # said once, not once per call


def test_a_silent_remote_does_not_hold_the_process(tmp_path: Path, silent_endpoint: str) -> None:
    ws = write_workspace(tmp_path / "ws")
    proc, seconds = timed_build(ws, silent_endpoint)
    check(proc, seconds, executed=3)
    # Every step cached locally: lookups are not even needed, nothing waits.
    proc, seconds = timed_build(ws, silent_endpoint)
    assert proc.returncode == 0 and seconds < BOUND
    # Uploads of every step to the silent remote.
    proc, seconds = timed_build(ws, silent_endpoint, "--no-cache")
    check(proc, seconds, executed=3)


def test_a_remote_answering_500_is_a_miss(tmp_path: Path, failing_endpoint: str) -> None:
    ws = write_workspace(tmp_path / "ws")
    proc, seconds = timed_build(ws, failing_endpoint)
    check(proc, seconds, executed=3)


def test_a_stuck_call_is_abandoned_at_exit(tmp_path: Path) -> None:
    """The pool's threads never hold the interpreter: a call blocked forever is left behind."""
    script = (
        "import threading\n"
        "from mlbuild.engine.run.daemon_pool import DaemonPool\n"
        "pool = DaemonPool(2)\n"
        "stuck = pool.submit(threading.Event().wait)\n"
        "done = pool.submit(sum, [1, 2])\n"
        "assert done.result(timeout=30) == 3\n"
        "pool.shutdown()\n"
        "print('exiting')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "exiting", proc.stderr


def test_daemon_pool_runs_in_parallel_and_reports_errors() -> None:
    from mlbuild.engine.run.daemon_pool import DaemonPool

    pool = DaemonPool(4)
    barrier = threading.Barrier(4, timeout=30)
    futures = [pool.submit(barrier.wait) for _ in range(4)]  # all four at once, or a timeout
    assert sorted(f.result(timeout=30) for f in futures) == [0, 1, 2, 3]
    failing = pool.submit(int, "x")
    with pytest.raises(ValueError):
        failing.result(timeout=30)
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(int, "1")
