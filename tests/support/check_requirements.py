#!/usr/bin/env python3
"""Exit 0 if every requirement given on the command line (or in -r FILE) is installed.

Fast (no pip, no network): used by .ci/setup.sh to skip `pip install` when nothing is
missing. Extras are followed (``ray[default]`` checks ray's ``default`` extra too).
Prints the unsatisfied requirements on stderr and exits 1 otherwise.

    python tests/support/check_requirements.py 'torch==2.13.0' 'ray[default]'
    python tests/support/check_requirements.py -r requirements.txt
"""

from __future__ import annotations

import sys
from importlib import metadata

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # packaging missing: cannot tell, so say "not satisfied"
    print("packaging is not installed", file=sys.stderr)
    sys.exit(1)


def _missing(req: Requirement, seen: set[tuple[str, str]]) -> list[str]:
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        return []
    name = canonicalize_name(req.name)
    try:
        dist = metadata.distribution(req.name)
    except metadata.PackageNotFoundError:
        return [f"{req} (not installed)"]
    version = dist.version
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        return [f"{req} (have {version})"]
    problems: list[str] = []
    for extra in sorted(req.extras):
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        for raw in dist.requires or []:
            sub = Requirement(raw)
            if sub.marker is None or not sub.marker.evaluate({"extra": extra}):
                continue
            if sub.marker.evaluate({"extra": ""}):
                continue  # a base requirement, not the extra's own
            sub.marker = None
            problems += _missing(sub, seen)
    return problems


def main(argv: list[str]) -> int:
    lines: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "-r":
            with open(next(it), encoding="utf-8") as fh:
                lines += fh.read().splitlines()
        else:
            lines.append(arg)
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            problems += _missing(Requirement(line), seen)
    for p in problems:
        print(f"unsatisfied: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
