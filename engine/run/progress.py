"""What a build shows while it runs: a live status line on a terminal, plain lines otherwise.

Everything goes to stderr, so ``--json`` output on stdout stays clean.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Reporter:
    """Plain lines: one per executed or failed action, and a summary."""

    live = False  # a live reporter shows running and finished steps in its status line instead

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.total = 0
        self.done = 0
        self.cached = 0
        self.executed = 0
        self.failed = 0
        self.running: dict[str, float] = {}
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def start(self, total: int) -> None:
        self.total = total

    def action_started(self, label: str) -> None:
        self.running[label] = time.monotonic()
        if not self.quiet and not self.live:
            self.write(f"[{self.done}/{self.total}] running {label}")

    def action_finished(self, label: str, status: str, seconds: float) -> None:
        self.running.pop(label, None)
        self.done += 1
        if status in ("cached", "remote"):
            self.cached += 1
        elif status == "executed":
            self.executed += 1
            if not self.quiet and not self.live:
                self.write(f"[{self.done}/{self.total}] built {label} ({seconds:.2f}s)")
        elif status == "failed":
            self.failed += 1

    def action_failed(self, label: str, message: str) -> None:
        self.write(f"FAILED {label}:\n{message}")

    def finish(self, summary: str) -> None:
        self.write(summary)

    def close(self) -> None:
        pass


class LiveReporter(Reporter):
    """A status line redrawn in place: done / cached / running, and the running steps' times."""

    live = True

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _status(self) -> str:
        now = time.monotonic()
        running = ", ".join(f"{label} {now - t:.0f}s" for label, t in list(self.running.items())[:3])
        more = f" +{len(self.running) - 3}" if len(self.running) > 3 else ""
        return (
            f"[{self.done}/{self.total}] {self.cached} cached, {self.executed} built, "
            f"{len(self.running)} running{': ' + running + more if running else ''}"
        )

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            with self._lock:
                self.stream.write("\r\x1b[2K" + self._status()[:200])
                self.stream.flush()

    def write(self, line: str) -> None:
        with self._lock:
            self.stream.write("\r\x1b[2K" + line + "\n")
            self.stream.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        with self._lock:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()


def make_reporter(quiet: bool = False) -> Reporter:
    return LiveReporter() if sys.stderr.isatty() and not quiet else Reporter(quiet=quiet)
