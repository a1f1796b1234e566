"""The local executor: a pool of worker processes on this machine, ``-j`` actions at once."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, ClassVar

import msgspec

from mlbuild.engine.interfaces import (
    ActionOutcome,
    ActionSpec,
    ExecutorContext,
    ExecutorOptions,
    NoOptions,
)

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(ActionOutcome)


def exit_with_parent(parent: int) -> None:
    """In a worker: exit when the build process is gone. A build stopped by a signal stops its
    workers itself; one killed outright (SIGKILL, OOM) cannot, and its workers would otherwise
    wait for work forever, holding its pipes open."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="mlbuild-exit-with-parent", daemon=True).start()


class LocalExecutor:
    """Runs each action in a worker process; a lost worker is retried per the rule's ``retries``."""

    name: ClassVar[str] = "local"
    options_type: ClassVar[type[ExecutorOptions]] = NoOptions
    needs_image: ClassVar[bool] = False
    needs_shared_path: ClassVar[bool] = False

    def __init__(self, context: ExecutorContext, options: ExecutorOptions | None = None) -> None:
        self.cas_root = context.cas_root
        self.jobs = max(1, context.jobs)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _get_pool(self) -> ProcessPoolExecutor:
        # Imported on the first step: the engine loads this class for every build, even one
        # that runs nothing (to read what it declares).
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with self._lock:
            if self._pool is None:
                # spawn: workers must not inherit the parent's LMDB handles or threads.
                self._pool = ProcessPoolExecutor(
                    self.jobs, mp_context=multiprocessing.get_context("spawn"),
                    initializer=exit_with_parent, initargs=(os.getpid(),),
                )
            return self._pool

    def _reset_pool(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                broken.shutdown(wait=False, cancel_futures=False)
                self._pool = None

    def submit(self, spec: ActionSpec) -> Future[ActionOutcome]:
        result: Future[ActionOutcome] = Future()
        self._attempt(spec, _enc.encode(spec), result, spec.options.retries)
        return result

    def _attempt(self, spec: ActionSpec, payload: bytes, result: Future[ActionOutcome], retries: int) -> None:
        from concurrent.futures.process import BrokenProcessPool

        from mlbuild.engine.run.runner import run_encoded, timeout_message

        pool = self._get_pool()
        try:
            inner = pool.submit(run_encoded, payload, self.cas_root)
        except (BrokenProcessPool, RuntimeError):
            self._reset_pool(pool)
            pool = self._get_pool()
            inner = pool.submit(run_encoded, payload, self.cas_root)

        submitted = time.monotonic()
        limit = spec.options.timeout

        def done(f: Future[bytes]) -> None:
            if f.cancelled():  # the pool was closed (an interrupted build): never started
                if not result.done():
                    result.set_result(ActionOutcome(key=spec.key, error="cancelled: the build stopped", error_kind="infra"))
                return
            exc = f.exception()
            if exc is None:
                result.set_result(_dec.decode(f.result()))
            elif isinstance(exc, BrokenProcessPool) and limit and time.monotonic() - submitted >= limit:
                # The runner ended its own worker: the step outlived its timeout inside C code.
                self._reset_pool(pool)
                result.set_result(ActionOutcome(key=spec.key, error=timeout_message(limit), error_kind="step"))
            elif isinstance(exc, BrokenProcessPool) and retries > 0:
                self._reset_pool(pool)
                self._attempt(spec, payload, result, retries - 1)
            else:
                if isinstance(exc, BrokenProcessPool):
                    lost = ActionOutcome(key=spec.key, error="its worker process died", error_kind="lost")
                    result.set_result(lost)
                else:
                    msg = f"{type(exc).__name__}: {exc}"
                    result.set_result(ActionOutcome(key=spec.key, error=msg, error_kind="infra"))

        inner.add_done_callback(done)

    def close(self) -> None:
        """Stop the workers. The build calls this once nothing is left to run, or when it was
        interrupted: then a step still running is killed rather than waited for."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        # ProcessPoolExecutor has no public way to stop a running task before Python 3.14.
        for process in list(getattr(pool, "_processes", {}).values()):
            if process.is_alive():
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
