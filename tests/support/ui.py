"""The UI's Flask app served in this process, on a free loopback port, for browser tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

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
