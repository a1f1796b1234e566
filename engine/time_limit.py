"""Time limits on user code run in-process: loading a ``BUILD.py`` (a file that loops forever
must not hang planning) and running a step (``@rule(timeout=...)``, ``--timeout``).

The limit is a ``SIGALRM`` timer, which interrupts Python code (and sleeps, and most blocking
calls) in the main thread; code stuck inside one long C call is interrupted when it returns.
Elsewhere (a server's thread, a platform without ``setitimer``) the code runs unlimited.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["TimeUp", "time_limit"]


class TimeUp(BaseException):
    """Raised into the limited code when its time is up. A BaseException, so that the user's
    own ``except Exception`` does not swallow it."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise TimeUp()


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeUp into the body if it runs longer than ``seconds`` (0: no limit)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
