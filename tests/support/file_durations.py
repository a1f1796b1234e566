"""``--file-durations=N``: the N test files that took longest (setup + call + teardown of
their tests), next to pytest's own ``--durations`` per test. CI prints both, so that what makes
the suite slow is visible from the log."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest


class FileDurations:
    def __init__(self, count: int) -> None:
        self.count = count
        self.seconds: dict[str, float] = defaultdict(float)
        self.tests: dict[str, int] = defaultdict(int)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        path = report.nodeid.split("::", 1)[0]
        self.seconds[path] += report.duration
        if report.when == "call":
            self.tests[path] += 1

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        slowest = sorted(self.seconds.items(), key=lambda kv: kv[1], reverse=True)[: self.count]
        if not slowest:
            return
        total = sum(self.seconds.values())
        terminalreporter.write_sep("=", f"slowest {len(slowest)} files (of {total:.0f}s in tests)")
        for path, seconds in slowest:
            terminalreporter.write_line(f"{seconds:8.2f}s {self.tests[path]:4d} tests  {path}")


def addoption(parser: pytest.Parser) -> None:
    parser.addoption("--file-durations", type=int, default=0, metavar="N",
                     help="show the N slowest test files (setup + call + teardown)")


def configure(config: pytest.Config) -> None:
    count = config.getoption("--file-durations")
    if count:
        config.pluginmanager.register(FileDurations(count), "mlbuild-file-durations")
