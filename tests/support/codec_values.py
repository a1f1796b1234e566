"""Values of every codec, built deterministically: imported by tests/test_codecs.py and by
the fresh processes that check the same value encodes to the same bytes there."""

from __future__ import annotations

import dataclasses
import datetime
import enum
from pathlib import PurePosixPath
from typing import Any, NamedTuple

import numpy as np


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(NamedTuple):
    x: float
    y: float


@dataclasses.dataclass
class Report:
    name: str
    when: datetime.datetime
    where: PurePosixPath
    color: Color
    point: Point
    scores: list[float]


def make_plain() -> Report:
    return Report("r", datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC), PurePosixPath("data/x.csv"),
                  Color.BLUE, Point(1.0, -2.5), [0.1, 0.2])


def make_frame() -> Any:
    import pandas as pd

    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"x": rng.normal(size=20), "label": ["a", "b"] * 10, "n": np.arange(20, dtype=np.int32)},
        index=pd.Index([f"row{i}" for i in range(20)], name="id"),
    )


def make_polars() -> Any:
    import polars as pl

    return pl.DataFrame({"a": [1, 2, 3], "b": ["x", None, "z"]})


def make_sparse() -> Any:
    import scipy.sparse as sp

    return sp.random(30, 40, density=0.1, format="csr", random_state=0, dtype=np.float64)


def make_estimator() -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.RandomState(0)
    x = rng.rand(60, 4)
    y = (x[:, 0] + x[:, 1] > 1).astype(int)
    return make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0, n_jobs=1)).fit(x, y)


class MLP:  # replaced below when torch is importable (keeps this module importable without it)
    pass


try:
    import torch

    class MLP(torch.nn.Module):  # type: ignore[no-redef]
        def __init__(self, width: int, depth: int = 2) -> None:
            super().__init__()
            self.width, self.depth = width, depth
            self.layers = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(depth)])
            self.register_buffer("scale", torch.ones(width))

        def forward(self, x: Any) -> Any:
            return self.layers(x) * self.scale

    class Opaque(torch.nn.Module):
        """Built with an argument it does not keep: cannot be rebuilt from its state_dict."""

        def __init__(self, n: int) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(n, n)

except ImportError:
    pass


def make_module() -> Any:
    import torch

    torch.manual_seed(0)
    return MLP(5, depth=3)


def make_dataset() -> Any:
    import torch
    from torch.utils.data import TensorDataset

    return TensorDataset(torch.arange(12, dtype=torch.float32).reshape(4, 3), torch.tensor([0, 1, 0, 1]))


def make_plotly() -> Any:
    import plotly.graph_objects as go

    return go.Figure(go.Scatter(x=[0, 1, 2], y=[1.0, 0.5, 0.25], name="pr"), layout={"title": {"text": "PR"}})


def make_matplotlib() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.plot([0, 1, 2], [1.0, 0.5, 0.25], label="pr")
    ax.legend()
    return fig


def make_image() -> Any:
    from PIL import Image

    arr = (np.arange(8 * 8 * 3) % 251).astype(np.uint8).reshape(8, 8, 3)
    return Image.fromarray(arr, "RGB")


def make_nested() -> dict[str, Any]:
    return {"features": make_sparse(), "frame": make_frame(), "model": make_estimator(), "meta": make_plain()}


FACTORIES = ["make_plain", "make_frame", "make_polars", "make_sparse", "make_estimator", "make_module",
             "make_dataset", "make_plotly", "make_matplotlib", "make_image", "make_nested"]


def double(x: Any) -> Any:
    """A team's own function inside a model (skops does not trust it by default)."""
    return x * 2
