"""verify's and reproduce's diffs for the new codecs: DataFrame cells, sparse entries, model
parameters, torch weights — at the top of an output or nested inside plain data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlbuild.engine.inspect.artifact_diff import diff_bytes, format_diff
from mlbuild.rules import codecs


def _lines(old: Any, new: Any) -> list[str]:
    codec, a = codecs.encode(old)
    codec2, b = codecs.encode(new)
    assert codec == codec2
    return format_diff(diff_bytes(codec, a, b))


def test_dataframes_differ_by_rows_columns_and_max_abs_diff() -> None:
    import pandas as pd

    old = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "s": ["a", "b", "c", "d"]}, index=pd.Index(["r1", "r2", "r3", "r4"], name="id"))
    new = old.copy()
    new.loc["r2", "x"] = 2.5
    new.loc["r4", "x"] = 3.0
    new.loc["r3", "s"] = "z"
    new["extra"] = 0
    assert _lines(old, new) == [
        "(root): table 4x2 -> 4x3: 3 of 4 rows differ (r2, r3, r4)",
        "  columns added: extra",
        "  column 'x': 2 of 4 cells differ, max abs diff 1",
        "  column 's': 1 of 4 cells differ",
    ]
    assert _lines(old, old.iloc[:3]) == ["(root): table 4x2 -> 3x2", "  4 -> 3 rows; cells are not compared"]


def test_sparse_matrices_differ_entry_by_entry() -> None:
    import scipy.sparse as sp

    old = sp.random(20, 10, density=0.2, format="csr", random_state=0)
    new = old.copy()
    new.data[3] += 0.25
    added = old.tolil()
    added[0, 0] = 7.0 if old[0, 0] == 0 else 0.0
    lines = _lines(old, new)
    assert lines == ["(root): float64[20, 10]: 1 of 40 elements differ, max abs diff 0.25, max rel diff "
                     f"{0.25 / old.data[3]:.6g} (sparse csr; 40 -> 40 stored entries)"]
    assert "1 of" in _lines(old, added.tocsr())[0]
    assert "sparse csr -> coo" in _lines({"m": old}, {"m": old.tocoo()})[0]  # same values, other layout


def test_models_differ_by_parameters_and_fitted_arrays() -> None:
    from sklearn.ensemble import RandomForestClassifier

    x = np.random.RandomState(0).rand(50, 3)
    y = (x[:, 0] > 0.5).astype(int)
    old = RandomForestClassifier(n_estimators=2, random_state=0, max_depth=2).fit(x, y)
    deeper = RandomForestClassifier(n_estimators=2, random_state=0, max_depth=3).fit(x, y)
    lines = _lines(old, deeper)
    assert "(root).max_depth: 2 -> 3" in lines
    nudged = RandomForestClassifier(n_estimators=2, random_state=0, max_depth=2).fit(x + 1e-3, y)
    lines = _lines(old, nudged)
    assert lines and all(".tree_.nodes.threshold: float64[" in line for line in lines), lines
    assert "max abs diff 0.001" in lines[0]


def test_torch_weights_and_nested_values_are_named_by_their_path() -> None:
    import pandas as pd
    import torch

    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    lines = _lines(a, b)
    assert [line.split(":")[0] for line in lines] == ["(root).bias", "(root).weight"]
    frame = pd.DataFrame({"v": [1, 2]})
    nested = _lines({"run": {"frame": frame, "net": a}}, {"run": {"frame": frame.assign(v=[1, 3]), "net": a}})
    assert nested == ["run.frame: table 2x1: 1 of 2 rows differ (1)", "  column 'v': 1 of 2 cells differ, max abs diff 1"]


@pytest.mark.parametrize("codec_value", ["plotly", "matplotlib"])
def test_figures_differ_by_their_data_or_drawing(codec_value: str) -> None:
    if codec_value == "plotly":
        import plotly.graph_objects as go

        lines = _lines(go.Figure(go.Scatter(y=[1, 2])), go.Figure(go.Scatter(y=[1, 3])))
        assert lines == ["figure.data[0].y[1]: 2 -> 3"]
    else:
        from matplotlib.figure import Figure

        def fig(ys: list[float]) -> Any:
            f = Figure(figsize=(2, 2))
            f.add_subplot().plot(ys)
            return f

        lines = _lines(fig([1, 2]), fig([1, 3]))
        assert lines[0].startswith("(root) (PNG): ") and "a different drawing" in lines[0]
