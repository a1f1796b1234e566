"""``mlbuild ui``: serve the local web UI over the cache's builds, steps and artifacts."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from mlbuild.engine.errors import UserError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: only this machine can connect)")
    p.add_argument("--open", action="store_true", help="open the UI in a web browser")
    p.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="the cache to show (default: $MLBUILD_CACHE_DIR, the workspace's, ~/.cache/mlbuild)")
    p.add_argument("--all-workspaces", action="store_true",
                   help="list the builds of every workspace sharing the cache (default: this workspace's, "
                        "when started in one; the page can switch)")


def cache_dir(args: argparse.Namespace) -> Path:
    from mlbuild.engine.run.context import store_dir

    return store_dir(args.cache_dir)


def access(host: str) -> tuple[set[str] | None, str | None]:
    """The Host names a request may carry, and the token it must, for a server on ``host``.

    Loopback only: the loopback names, no token (only this machine connects, and the Host
    check stops DNS rebinding). Anything wider: a random token made for this start, and the
    given address (with loopback) as Host, or any Host for a wildcard address.
    """
    import secrets

    from mlbuild.engine.ui.server import LOOPBACK_HOSTS

    if host in LOOPBACK:
        return set(LOOPBACK_HOSTS) | {host}, None
    token = secrets.token_urlsafe(18)
    if host in ("0.0.0.0", "::", ""):
        return None, token
    return set(LOOPBACK_HOSTS) | {host}, token


def _scope(args: argparse.Namespace) -> Any:
    """The builds the lists show by default: this workspace's, else (outside one, or with
    --all-workspaces) every workspace's."""
    from mlbuild.engine.inspect.recorded import ALL, Scope
    from mlbuild.engine.plan.workspace import Workspace, find_root
    from mlbuild.engine.run.build_record import workspace_id

    if args.all_workspaces:
        return ALL
    try:
        ws = Workspace(find_root(os.getcwd()))
    except UserError:
        return ALL
    return Scope(workspace_id(ws), str(ws.root))


def run(args: argparse.Namespace) -> int:
    try:
        from werkzeug.serving import make_server

        from mlbuild.engine.ui.server import create_app
    except ImportError as exc:
        raise UserError(f"mlbuild ui needs Flask: pip install 'mlbuild[ui]' ({exc})") from None
    from mlbuild.cache.store import LocalStore
    from mlbuild.engine.ui.state import UiState, remove_state, write_state

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: not a port number")
    root = cache_dir(args)
    store = LocalStore(root)
    hosts, token = access(args.host)
    try:
        app = create_app(store, hosts=hosts, token=token, scope=_scope(args))
        server = make_server(args.host, args.port, app, threaded=True)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    host = args.host if ":" not in args.host else f"[{args.host}]"
    url = f"http://{host}:{server.server_port}"
    if args.host not in LOOPBACK:
        print(f"mlbuild ui: warning: listening on {args.host}: anyone who has the URL below (with its token) "
              "can read the cache", file=sys.stderr)
    pid = os.getpid()
    write_state(root, UiState(url=url, pid=pid, token=token))

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    import threading

    from mlbuild.engine.ui.server import warm_layouts

    # The newest builds' layouts, ready before anyone asks (a 10,000-step one takes about a second).
    threading.Thread(target=warm_layouts, args=(store,), daemon=True, name="ui-warm").start()
    shown = url + "/" + (f"?token={token}" if token else "")
    print(f"mlbuild ui: serving {root} at {shown} (Ctrl-C to stop)", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(shown)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        remove_state(root, pid)
        store.close()
    return 0
