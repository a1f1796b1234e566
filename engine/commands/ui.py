"""``mlbuild ui``: serve the local web UI over the cache's builds, steps and artifacts."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from mlbuild.engine.errors import UserError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: only this machine can connect)")
    p.add_argument("--open", action="store_true", help="open the UI in a web browser")
    p.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="the cache to show (default: $MLBUILD_CACHE_DIR, the workspace's, ~/.cache/mlbuild)")


def cache_dir(args: argparse.Namespace) -> Path:
    from mlbuild.cache.store import default_cache_dir
    from mlbuild.engine.plan.workspace import find_root

    if args.cache_dir:
        return Path(args.cache_dir).expanduser()
    configured = None
    try:
        from mlbuild.engine.plan.workspace import Workspace

        configured = Workspace(find_root(os.getcwd())).cache_dir
    except UserError:
        pass  # outside a workspace: the default cache
    return default_cache_dir(configured)


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
    try:
        server = make_server(args.host, args.port, create_app(store), threaded=True)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    host = args.host if ":" not in args.host else f"[{args.host}]"
    url = f"http://{host}:{server.server_port}"
    if args.host not in LOOPBACK:
        print(f"mlbuild ui: warning: listening on {args.host}: anyone who can reach it can read the cache",
              file=sys.stderr)
    pid = os.getpid()
    write_state(root, UiState(url=url, pid=pid))

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"mlbuild ui: serving {root} at {url}/ (Ctrl-C to stop)", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url + "/")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        remove_state(root, pid)
        store.close()
    return 0
