"""How fast the artifact codecs encode and decode realistic values, and how big the bytes are.

    python benchmarks/codec_throughput.py [--repeat 3]

Prints, per codec: the value, encoded size, median encode and decode time over --repeat runs,
and encode throughput in MB/s of encoded bytes. Also the time a second encoding of the same
value takes to give the same bytes (the determinism check users run with check_codec).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mlbuild.rules import codecs


def _values() -> list[tuple[str, Callable[[], Any]]]:
    def frame() -> Any:
        import pandas as pd

        rng = np.random.default_rng(0)
        n = 200_000
        return pd.DataFrame({"x": rng.normal(size=n), "y": rng.integers(0, 100, n), "s": rng.choice(["a", "bb", "ccc"], n)},
                            index=pd.Index(np.arange(n) * 2, name="id"))

    def sparse() -> Any:
        import scipy.sparse as sp

        return sp.random(20_000, 5_000, density=0.01, format="csr", random_state=0)

    def forest() -> Any:
        from sklearn.ensemble import RandomForestClassifier

        rng = np.random.RandomState(0)
        x = rng.rand(2_000, 20)
        return RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(x, (x[:, 0] + x[:, 1] > 1).astype(int))

    def module() -> Any:
        import torch

        torch.manual_seed(0)
        return torch.nn.Bilinear(1024, 1024, 2)

    def figure() -> Any:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 4))
        fig.add_subplot().plot(np.random.default_rng(0).normal(size=2_000).cumsum())
        return fig

    return [("DataFrame 200k x 3", frame), ("csr 20k x 5k, 1%", sparse), ("random forest, 100 trees", forest),
            ("nn.Bilinear 2.1M params", module), ("matplotlib figure", figure)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{'value':<28} {'codec':<13} {'bytes':>11} {'encode ms':>10} {'decode ms':>10} {'MB/s':>8}")
    for label, make in _values():
        value = make()
        enc: list[float] = []
        dec: list[float] = []
        codec, data = codecs.encode(value)
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            again = codecs.encode(value)
            enc.append(time.perf_counter() - t0)
            assert again == (codec, data), f"{label}: not deterministic"
            t0 = time.perf_counter()
            codecs.decode(codec, data)
            dec.append(time.perf_counter() - t0)
        e, d = statistics.median(enc), statistics.median(dec)
        print(f"{label:<28} {codec:<13} {len(data):>11,} {e * 1000:>10.1f} {d * 1000:>10.1f} {len(data) / e / 1e6:>8.1f}")


if __name__ == "__main__":
    main()
