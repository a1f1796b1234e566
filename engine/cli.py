"""The ``mlbuild`` command line. Command modules are imported only when used, so that
``mlbuild --version`` and a no-op build start fast."""

from __future__ import annotations

import argparse
import errno
import gc
import importlib
import os
import signal
import sys
import threading
from typing import Any

from mlbuild.cache.errors import StoreError
from mlbuild.engine.errors import UserError

_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR}


def _errno_hint(code: int | None) -> str:
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "; free space (e.g. `mlbuild cache gc --max-size 10G`) and try again (the cache is intact)"
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "; make it writable, or point MLBUILD_CACHE_DIR / [cache] dir elsewhere"
    return ""

# name -> (module under mlbuild.engine.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("build", "build targets: mlbuild build //pkg:name //pkg/... (or just mlbuild //pkg:name)"),
    "query": ("query", "query the target graph: deps(X), rdeps(U, X), a pattern"),
    "show": ("show", "show where a target's outputs are, and small values"),
    "clean": ("clean", "remove the outputs materialized in the workspace (never the cache)"),
    "cache": ("cache", "manage the cache: gc, push, pull, stats"),
    "fetch": ("fetch", "download a target's outputs from the remote cache"),
    "verify": ("verify", "re-execute targets and compare their outputs bit for bit"),
    "builds": ("builds", "list recorded builds, or show one"),
    "rerun": ("rerun", "re-run a recorded build (optionally with --set overrides)"),
    "reproduce": ("reproduce", "rebuild a recorded build from its git commit and compare"),
    "lineage": ("lineage", "the tree from an output back to its sources"),
    "why": ("why", "explain why each action of a target was cached or rebuilt"),
    "diff": ("diff", "compare two recorded builds target by target"),
    "metrics": ("metrics", "the metrics targets produced (show), and how two builds differ (diff)"),
    "exp": ("exp", "builds of a target as experiments (show), or a grid of --set variants (run)"),
    "affected": ("affected", "the targets whose keys a change since a git ref alters (for CI)"),
    "plots": ("plots", "overlay the series of builds as line charts in one HTML file"),
    "ui": ("ui", "serve the local web UI over builds, steps and artifacts"),
    "config": ("config", "print every effective setting and where it came from (flag, environment, mlbuild.toml, default)"),
}


def _command_index(argv: list[str]) -> int:
    """Index of the first argument that is not a global option."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "-C":
            i += 2
        elif arg.startswith("-C") or arg in ("-h", "--help", "--version"):
            i += 1
        else:
            return i
    return i


def _is_label(arg: str) -> bool:
    return arg.startswith("//") or arg.startswith(":")


def make_parser(only: str | None = None) -> argparse.ArgumentParser:
    from mlbuild import __version__

    parser = argparse.ArgumentParser(
        prog="mlbuild",
        description="Content-addressed builds of Python ML pipelines.",
        epilog="`mlbuild //pkg:name` is short for `mlbuild build //pkg:name`.",
    )
    parser.add_argument("--version", action="version", version=f"mlbuild {__version__}")
    parser.add_argument("-C", dest="directory", default=None, metavar="DIR", help="run as if started in DIR")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == only:  # the other commands' modules stay unimported
            importlib.import_module(f"mlbuild.engine.commands.{module}").add_arguments(p)
    return parser


def console_main() -> int:
    """The ``mlbuild`` command and ``python -m mlbuild``: :func:`main`, then an exit that skips
    the interpreter's last full collection of everything the build still holds (a third of a
    second after a no-op of 10,000 steps; the process is ending, nothing needs collecting)."""
    code = main()
    gc.freeze()
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:
        from mlbuild import __version__

        print(f"mlbuild {__version__}")
        return 0
    i = _command_index(argv)
    if i < len(argv) and _is_label(argv[i]):
        argv.insert(i, "build")
    command = argv[i] if i < len(argv) and argv[i] in COMMANDS else None
    parser = make_parser(only=command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.directory:
        try:
            os.chdir(args.directory)
        except OSError as exc:
            print(f"mlbuild: error: cannot enter {args.directory}: {exc.strerror}", file=sys.stderr)
            return 2
    module = importlib.import_module(f"mlbuild.engine.commands.{COMMANDS[args.command][0]}")
    stopped_by: list[int] = []
    previous = _stop_on_signals(stopped_by)
    try:
        code = int(module.run(args) or 0)
        sys.stdout.flush()  # a reader gone away shows here, inside the handler below, not at exit
        return code
    except (UserError, StoreError) as exc:
        print(f"mlbuild: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mlbuild: interrupted; everything finished so far is cached", file=sys.stderr)
        return 128 + (stopped_by[0] if stopped_by else signal.SIGINT)
    except BrokenPipeError:
        # The reader went away (`mlbuild builds --json | head`): not an error of ours. Later
        # writes, and the flush at exit, go nowhere instead of raising again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + signal.SIGPIPE
    except OSError as exc:
        # The environment, not a bug: a full disk, a read-only or vanished folder.
        if exc.errno not in _ENVIRONMENT_ERRNOS:
            raise
        print(f"mlbuild: error: {exc.strerror}: {exc.filename or ''}".rstrip(": ") + _errno_hint(exc.errno), file=sys.stderr)
        return 2
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stop_on_signals(received: list[int]) -> dict[int, Any]:
    """SIGTERM and SIGHUP end a command as Ctrl-C does (steps stopped, the build recorded as
    interrupted, no worker left behind); a second one kills at once. The signal is appended to
    ``received``; returns the handlers to put back."""
    previous: dict[int, Any] = {}

    def stop(signum: int, frame: object) -> None:
        received.append(signum)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is signal.SIG_DFL:
                previous[signum] = signal.signal(signum, stop)
    return previous
