"""The inline executor: each step runs in the calling thread of this process, one at a time.

For tests and debugging: there is no worker process to start, so a build of small steps costs
what its steps cost. Steps go through the runner every executor uses (the spec and the outcome
are even msgpack-encoded on the way, as for a pool worker), against the local CAS, so keys,
outputs and logs are those of the local executor. What differs, and why:

- ``submit`` runs the step before it returns (the future it returns is already done), so steps
  never overlap and ``-j`` has no effect.
- The runner captures a step's output at the file-descriptor level (fd 1 and 2, so that C
  extensions and subprocesses are captured too), and a process has one fd 1 and one fd 2: steps
  MUST NOT overlap, so one lock serialises them across every inline executor in the process,
  and anything another thread writes to fd 1 or 2 while a step runs lands in that step's log.
  ``sys.stdout``/``sys.stderr`` are pointed at fd 1 and 2 for the step, because a host (pytest,
  a server) may have replaced them with objects the fd capture would not see.
- A step that kills its process (``os._exit``, a signal, a segfault) kills the caller: there is
  no worker to lose and retry, so ``retries`` never applies.
- After each step the modules it imported from the workspace are forgotten and the workspace
  leaves ``sys.path``, so the next step, or the next workspace, imports its own code afresh;
  third-party modules stay imported, which is where a worker's start-up time goes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any, ClassVar, TextIO

import msgspec

from mlbuild.cache.cas import CAS
from mlbuild.engine.interfaces import (
    ActionOutcome,
    ActionSpec,
    ExecutorContext,
    ExecutorOptions,
    NoOptions,
)
from mlbuild.engine.run.runner import run_encoded_with

# fd 1 and 2 belong to the process, not to an executor object: one step at a time, process-wide.
_STEP_LOCK = threading.Lock()


@functools.cache
def _fd_streams() -> tuple[TextIO, TextIO]:
    """Text streams on fd 1 and 2 themselves, made once and never closed: another thread may
    have picked one up as its ``sys.stderr`` while a step ran, and must still write to it."""
    return (open(1, "w", closefd=False, buffering=1, errors="replace"),  # noqa: SIM115
            open(2, "w", closefd=False, buffering=1, errors="replace"))  # noqa: SIM115


_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(ActionOutcome)


class InlineExecutor:
    """Runs each action in the calling thread; ``submit`` returns a future that is already done."""

    name: ClassVar[str] = "inline"
    options_type: ClassVar[type[ExecutorOptions]] = NoOptions
    needs_image: ClassVar[bool] = False
    needs_shared_path: ClassVar[bool] = False

    def __init__(self, context: ExecutorContext, options: ExecutorOptions | None = None) -> None:
        self.cas = CAS(context.cas_root)

    def submit(self, spec: ActionSpec) -> Future[ActionOutcome]:
        result: Future[ActionOutcome] = Future()
        with _STEP_LOCK, _step_scope(spec.workspace):
            try:
                outcome = _dec.decode(run_encoded_with(_enc.encode(spec), self.cas))
            except Exception as exc:  # the runner reports a step's own failures as outcomes
                outcome = ActionOutcome(key=spec.key, error=f"{type(exc).__name__}: {exc}", error_kind="infra")
        result.set_result(outcome)
        return result

    def close(self) -> None:
        pass  # nothing runs once submit has returned


def _under(path: Any, roots: tuple[str, ...]) -> bool:
    return isinstance(path, str) and any(path == r or path.startswith(r + os.sep) for r in roots)


def _from_workspace(module: Any, roots: tuple[str, ...]) -> bool:
    try:
        if _under(getattr(module, "__file__", None), roots):
            return True
        # A package without __init__.py (a namespace package) has no __file__, only its folders.
        return any(_under(p, roots) for p in getattr(module, "__path__", None) or ())
    except Exception:  # a third-party module with an odd __path__ (torch.classes): not ours
        return False


@contextlib.contextmanager
def _step_scope(workspace: str) -> Iterator[None]:
    """The process state a step may change, put back afterwards: which modules are imported
    from the workspace, ``sys.path``, and ``sys.stdout``/``sys.stderr``."""
    roots = (workspace, os.path.realpath(workspace))  # module paths follow sys.path's spelling
    saved_path = list(sys.path)
    before = set(sys.modules)
    saved_streams = sys.stdout, sys.stderr
    saved_bytecode = sys.dont_write_bytecode
    # A rule file rewritten within a second at the same size would match a .pyc written for
    # its old text; writing none keeps the next step from reading one.
    sys.dont_write_bytecode = True
    sys.stdout, sys.stderr = _fd_streams()
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved_streams
        sys.dont_write_bytecode = saved_bytecode
        sys.path[:] = saved_path
        for name in set(sys.modules) - before:
            module = sys.modules.get(name)
            if module is not None and _from_workspace(module, roots):
                del sys.modules[name]
        for entry in list(sys.path_importer_cache):
            if _under(entry, roots):
                del sys.path_importer_cache[entry]
