"""The UI for browser tests: its Flask app served in this process, or `mlbuild ui` run as a
command, each on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlbuild.cache.store import LocalStore


@contextmanager
def serve_ui(store: LocalStore) -> Iterator[str]:
    """``create_app(store)`` served until the block ends; yields its base URL."""
    from werkzeug.serving import make_server

    from mlbuild.engine.ui.server import create_app

    srv = make_server("127.0.0.1", 0, create_app(store), threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}"
    finally:
        srv.shutdown()
        thread.join(timeout=10)


CLI = [sys.executable, "-c", "import sys; from mlbuild.engine.cli import main; sys.exit(main())"]


@contextmanager
def ui_command(ws: Path, log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """``mlbuild ui`` run in ``ws`` until the block ends; yields its base URL once it answers
    (its output goes to ``log``, shown if it never does)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with log.open("w") as out:
        server = subprocess.Popen([*CLI, "ui", "--port", str(port)], cwd=ws, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/api/builds", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"mlbuild ui did not answer:\n{log.read_text()}") from None
                time.sleep(0.1)  # polling a server that is starting: each try is bounded above
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
