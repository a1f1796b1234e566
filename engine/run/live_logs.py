"""A running step's log, as a named file that grows while it runs, so the UI can follow it.

The runner captures a step's stdout and stderr into ``<cache>/tmp/live/<key>-<pid>.log``
(beside it, ``….json`` says which label and process it belongs to). When the step ends the
log goes into the CAS as before and both files are removed; a file whose process is gone is
stale and ignored. Nothing here imports more than msgspec: every step pays for it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec

from mlbuild.cache.processes import pid_alive
from mlbuild.engine.records import LiveLog

__all__ = ["LiveLog", "LIVE_DIR", "open_live_log", "running_logs"]

LIVE_DIR = "live"


@contextlib.contextmanager
def open_live_log(tmp: Path, key: str, label: str) -> Iterator[BinaryIO]:
    """A log file for the step ``key`` under ``tmp/live``, removed (with its note) on exit."""
    folder = tmp / LIVE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{key}-{os.getpid()}"
    log_path, note_path = stem.with_suffix(".log"), stem.with_suffix(".json")
    log = open(log_path, "w+b")  # noqa: SIM115 - closed below, after the note is gone
    try:
        note = msgspec.json.encode(LiveLog(key, label, os.getpid(), time.time()))
        note_path.write_bytes(note)
        yield log
    finally:
        note_path.unlink(missing_ok=True)
        log_path.unlink(missing_ok=True)
        log.close()



def running_logs(tmp: Path) -> list[LiveLog]:
    """The logs of steps running now (their process alive), newest first."""
    found = []
    try:
        notes = list((tmp / LIVE_DIR).glob("*.json"))
    except OSError:
        return []
    for note in notes:
        try:
            live = msgspec.json.decode(note.read_bytes(), type=LiveLog)
        except (OSError, msgspec.DecodeError):
            continue  # removed meanwhile, or half written
        log = note.with_suffix(".log")
        if pid_alive(live.pid) and log.exists():
            found.append(msgspec.structs.replace(live, path=str(log)))
    return sorted(found, key=lambda x: x.started, reverse=True)
