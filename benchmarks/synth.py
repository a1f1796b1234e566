"""Generate a synthetic workspace of N trivial targets, in chain or fan-out shape.

    python benchmarks/synth.py DIR N {chain,fanout}

Targets are spread over packages of 100 (``//p0000:t0`` …); each package's BUILD.py declares
its targets in a loop. In a chain every target depends on the one before it; in a fan-out
every target depends on ``//p0000:t0``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

PER_PACKAGE = 100

RULES = '''\
from mlbuild import rule


def bump(x):
    return x + 1


@rule
def step(config: dict, prev: int = 0) -> int:
    return bump(prev) + config["i"] * 0
'''


def label(i: int) -> str:
    return f"//p{i // PER_PACKAGE:04d}:t{i}"


def generate(root: Path, n: int, shape: Literal["chain", "fanout"]) -> list[str]:
    """Write the workspace under ``root``; returns every target's label."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "mlbuild.toml").write_text('[workspace]\nname = "synthetic"\n')
    (root / "rules.py").write_text(RULES)
    for p in range((n + PER_PACKAGE - 1) // PER_PACKAGE):
        first, last = p * PER_PACKAGE, min(n, (p + 1) * PER_PACKAGE)
        pkg = root / f"p{p:04d}"
        pkg.mkdir(exist_ok=True)
        if shape == "chain":
            dep = f'{{"prev": (":t%d" % (i - 1)) if i > {first} else "{label(first - 1)}"}} if i > 0 else {{}}'
        else:
            dep = '{"prev": "//p0000:t0"} if i > 0 else {}'
        (pkg / "BUILD.py").write_text(
            "from mlbuild import target\n\n"
            f"for i in range({first}, {last}):\n"
            f'    target(name="t%d" % i, rule="//rules.py:step", inputs={dep}, config={{"i": i}})\n'
        )
    return [label(i) for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dir", type=Path)
    ap.add_argument("n", type=int)
    ap.add_argument("shape", choices=["chain", "fanout"])
    args = ap.parse_args()
    generate(args.dir, args.n, args.shape)


if __name__ == "__main__":
    main()
