"""The log of a step while it runs, read in whole lines from the file the runner grows.

``live_log(tmp, label, offset)`` answers one poll: the text from ``offset`` up to the last
complete line written so far (or, with no offset, the last ``TAIL`` bytes starting at a line).
The page asks again with ``next`` until ``running`` turns false, then shows the stored log.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from mlbuild.engine.run.live_logs import running_logs

__all__ = ["LiveChunk", "live_log", "TAIL", "CHUNK"]

TAIL = 64 * 1024  # bytes of a running log shown when the page first opens it
CHUNK = 1024 * 1024  # at most this much per poll


class LiveChunk(msgspec.Struct):
    label: str
    running: bool  # False: no step with this label runs now (done, or never started)
    key: str | None = None
    offset: int = 0  # where ``text`` starts in the log
    next: int = 0  # ask again from here
    size: int = 0  # bytes written so far
    text: str = ""


def live_log(tmp: Path, label: str, offset: int | None) -> LiveChunk:
    found = next((log for log in running_logs(tmp) if log.label == label), None)
    if found is None:
        return LiveChunk(label, False)
    try:
        with open(found.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            start = max(0, size - TAIL) if offset is None else min(max(0, offset), size)
            f.seek(start)
            data = f.read(min(CHUNK, size - start))
    except OSError:
        return LiveChunk(label, False)
    if offset is None and start > 0:
        # Begin at a whole line, not in the middle of one.
        cut = data.find(b"\n")
        data, start = (data[cut + 1:], start + cut + 1) if cut >= 0 else (b"", start + len(data))
    end = data.rfind(b"\n")
    if end >= 0:
        data = data[: end + 1]
    elif len(data) < CHUNK:
        data = b""  # a line still being written waits for its end (unless it fills a chunk)
    return LiveChunk(label, True, found.key, start, start + len(data), size, data.decode(errors="replace"))
