"""Running ``mlbuild`` from a test: in this process (the default), or in a child process.

``mlbuild(ws, *args)`` calls ``mlbuild.engine.cli.main`` here, as if the command had been
started in ``ws``: the working directory, ``sys.argv`` (build records keep it) and any ``env``
given are set for the call and put back after it, and stdout/stderr are captured. Steps run on
the ``inline`` executor (in this thread) unless the test names another, so a build costs what
its steps cost instead of a process start-up per command and per worker. An exception that
escapes ``main`` becomes exit status 1 with its traceback on stderr, as in a real process.

``mlbuild_process(ws, *args)`` starts ``python -m mlbuild``: for what only a process shows (the
console script, signals, what a no-op build imports, the local executor's worker pool).

Both return a ``Run`` (``returncode``, ``stdout``, ``stderr``, ``json()``); with ``check=True``
(the default) a non-zero exit fails the test with both streams in the message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

# The executor's place in the configuration chain (engine/run/settings.py): after the flag.
ENV_EXECUTOR = "MLBUILD_EXECUTOR"


@dataclasses.dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout as JSON (a ``--json`` command prints one document and nothing else)."""
        return json.loads(self.stdout)


def _checked(run: Run, check: bool) -> Run:
    if check and run.returncode != 0:
        raise AssertionError(f"mlbuild {' '.join(run.args)} failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    return run


def mlbuild(ws: Path, *args: str, check: bool = True, env: Mapping[str, str | None] | None = None,
            executor: str | None = "inline") -> Run:
    """``mlbuild ARGS`` started in ``ws``, run in this process (a value of None in ``env``
    unsets a variable). ``executor`` is set as ``MLBUILD_EXECUTOR``, so an ``--executor`` flag
    still wins; None leaves the choice to the flags, the workspace and the default."""
    from mlbuild.engine.cli import main

    run_env = dict(env or {})
    if executor is not None:
        run_env.setdefault(ENV_EXECUTOR, executor)
    out, err = _stream(), _stream()
    with _started_in(ws, ["mlbuild", *args], run_env), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: --help, a usage error
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
        except Exception:
            traceback.print_exc()
            code = 1
    return _checked(Run(list(args), code, _text(out), _text(err)), check)


def mlbuild_process(ws: Path, *args: str, check: bool = True, env: Mapping[str, str | None] | None = None,
                    timeout: float = 300) -> Run:
    """``python -m mlbuild ARGS`` in a child process started in ``ws``, with this process's
    environment changed by ``env`` (a value of None unsets a variable)."""
    child_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "mlbuild", *args], cwd=ws, capture_output=True, text=True,
                          timeout=timeout, env={k: v for k, v in child_env.items() if v is not None})
    return _checked(Run(list(args), proc.returncode, proc.stdout, proc.stderr), check)


def _stream() -> io.TextIOWrapper:
    # Commands write JSON to sys.stdout.buffer, so the capture needs one (StringIO has none).
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)


def _text(stream: io.TextIOWrapper) -> str:
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode()


@contextlib.contextmanager
def _started_in(ws: Path, argv: list[str], env: Mapping[str, str | None]) -> Iterator[None]:
    """The working directory, ``sys.argv`` and environment of a process started in ``ws``."""
    cwd, saved_argv = os.getcwd(), sys.argv
    saved_env = {name: os.environ.get(name) for name in env}
    try:
        for name, value in env.items():
            _setenv(name, value)
        os.chdir(ws)
        sys.argv = argv
        yield
    finally:
        sys.argv = saved_argv
        os.chdir(cwd)
        for name, value in saved_env.items():
            _setenv(name, value)


def _setenv(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
