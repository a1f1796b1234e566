"""A thread pool whose threads never hold the process at exit.

``concurrent.futures.ThreadPoolExecutor`` joins its threads when the interpreter exits, so one
call stuck in a socket read (a remote that accepts connections and never answers) keeps
``mlbuild`` alive long after the build has finished. Calls made on this pool are abandoned
instead: the caller waits for a future with a deadline, and a thread still stuck when the
process ends is a daemon thread, which the interpreter does not wait for.

Only for calls whose result may be dropped at any moment: network requests whose effects are
atomic on the far side (a PUT either lands whole or not at all).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

__all__ = ["DaemonPool"]

T = TypeVar("T")
_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class DaemonPool:
    """``submit`` / ``shutdown`` like ThreadPoolExecutor, on at most ``workers`` daemon threads."""

    _ids = itertools.count()

    def __init__(self, workers: int, name: str = "mlbuild-daemon") -> None:
        self.workers = max(1, workers)
        self.name = name
        self._queue: SimpleQueue[_Item | None] = SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to a pool that was shut down")
            self._queue.put((future, fn, args))
            # A thread waiting for work takes it; otherwise start one, up to ``workers``.
            if not self._idle.acquire(blocking=False) and len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, name=f"{self.name}-{next(self._ids)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as exc:  # handed to whoever waits on the future
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del item, future, fn, args
            self._idle.release()

    def shutdown(self, cancel_futures: bool = True) -> None:
        """Cancel what has not started and let the threads end; never waits for a running call."""
        with self._lock:
            self._closed = True
            if cancel_futures:
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except Empty:
                        break
                    if item is not None:
                        item[0].cancel()
            for _ in self._threads:
                self._queue.put(None)
