"""In-process builds for the key mutation suite: plan, key, look up and run every step in this
process (the inline executor), so a build of a small workspace takes milliseconds and a test
can build hundreds of times."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from mlbuild.engine.run.api import build as engine_build
from mlbuild.engine.run.settings import BuildSettings, RemoteSettings


class Built:
    def __init__(self, executed: set[str], outputs: dict[str, str], log: str, failures: dict[str, str], causes: dict[str, str]) -> None:
        self.executed = executed
        self.outputs = outputs  # label -> result digest
        self.log = log
        self.failures = failures
        self.causes = causes
        self.remote_hits: set[str] = set()


def build(
    root: Path,
    cache: Path,
    patterns: list[str] | None = None,
    *,
    overrides: dict[str, dict[str, Any]] | None = None,
    strict: bool = False,
    remote: str | None = None,
) -> Built:
    """One build of ``root`` through ``mlbuild.engine.build`` with the inline executor, against
    the cache in ``cache``; ``log`` is what the build printed (warnings included)."""
    stream = io.StringIO()
    settings = BuildSettings(
        targets=patterns or ["//..."],
        directory=str(root),
        executor="inline",
        jobs=1,
        cache_dir=str(cache),
        overrides=overrides or {},
        keep_going=True,
        materialize=False,
        strict=strict,
        remote=RemoteSettings(url=remote, enabled=remote is not None),
    )
    with contextlib.redirect_stderr(stream):
        result = engine_build(settings)
    executed = {a.label for a in result.record.actions if a.status == "executed"}
    remote_hits = {a.label for a in result.record.actions if a.status == "remote"}
    causes = {a.label: a.cause for a in result.record.actions if a.cause}
    outputs = {label: r.result_digest() for label, r in result.results.items()}
    built = Built(executed, outputs, stream.getvalue(), dict(result.failures), causes)
    built.remote_hits = remote_hits
    return built


class SysPath:
    """Puts folders on ``sys.path`` for a test (a src/ layout, a fake site-packages)."""

    def __init__(self, *folders: Path) -> None:
        self.folders = [str(f) for f in folders]

    def __enter__(self) -> SysPath:
        for f in reversed(self.folders):
            sys.path.insert(0, f)
        return self

    def __exit__(self, *exc: object) -> None:
        for f in self.folders:
            while f in sys.path:
                sys.path.remove(f)
            for name, mod in list(sys.modules.items()):
                if (getattr(mod, "__file__", None) or "").startswith(f):
                    del sys.modules[name]


def fake_dist(site: Path, name: str, version: str, code: str, requires: list[str] | None = None) -> None:
    """An installed distribution in a ``site-packages`` folder: module ``name`` and its metadata."""
    for old in site.glob(f"{name}-*.dist-info"):
        shutil.rmtree(old)
    (site / f"{name}.py").write_text(code)
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires or [])
    (info / "METADATA").write_text(meta)
    (info / "RECORD").write_text(f"{name}.py,,\n{info.name}/METADATA,,\n")
    (info / "top_level.txt").write_text(name + "\n")
    os.utime(site)
    sys.modules.pop(name, None)  # as after an upgrade: the next process imports the new one
