"""Accuracy, log loss and a precision-recall curve on the test split, written to metrics.json
(marked as metrics) and prc.json (marked as a plot)."""

import json
from pathlib import Path

import numpy as np
from mlbuild import rule


@rule(metrics=["metrics.json"], plots=["prc.json"])
def evaluate(model: dict, data: dict, out: Path) -> None:
    w = np.asarray(model["weights"])
    x, y = data["x_test"], data["y_test"]
    p = 1.0 / (1.0 + np.exp(-(np.hstack([x, np.ones((len(x), 1))]) @ w)))
    eps = 1e-12
    metrics = {
        "accuracy": round(float(np.mean((p > 0.5) == y)), 10),
        "log_loss": round(float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))), 10),
    }
    order = np.argsort(-p)
    hits = np.cumsum(y[order])
    precision = hits / np.arange(1, len(y) + 1)
    recall = hits / max(1, int(y.sum()))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    (out / "prc.json").write_text(json.dumps({"precision": [round(float(v), 10) for v in precision[::10]],
                                              "recall": [round(float(v), 10) for v in recall[::10]]}) + "\n")
