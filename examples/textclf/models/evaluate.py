"""Metrics, the precision-recall curve and its plots (DVC's ``evaluate`` stage)."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from matplotlib.figure import Figure
from mlbuild import rule
from sklearn import metrics
from sklearn.ensemble import RandomForestClassifier

from features.featurize import Features


@dataclass
class Evaluation:
    metrics: dict[str, float]
    precision_recall: pd.DataFrame  # precision, recall, threshold: one row per threshold
    plot: Figure  # stored drawn (PNG + SVG)
    interactive: go.Figure  # the same curve, as plotly JSON


@rule()
def evaluate(model: RandomForestClassifier, features: Features) -> Evaluation:
    scores = model.predict_proba(features.test)[:, 1]
    labels = features.test_labels
    precision, recall, thresholds = metrics.precision_recall_curve(labels, scores)
    summary = {
        "avg_prec": float(metrics.average_precision_score(labels, scores)),
        "roc_auc": float(metrics.roc_auc_score(labels, scores)),
        "accuracy": float(metrics.accuracy_score(labels, scores >= 0.5)),
    }
    curve = pd.DataFrame({"precision": precision[:-1], "recall": recall[:-1], "threshold": thresholds})

    fig = Figure(figsize=(4, 3.2))
    ax = fig.add_subplot()
    ax.plot(recall, precision, drawstyle="steps-post")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
           title=f"precision-recall (AP {summary['avg_prec']:.3f})")
    fig.tight_layout()

    interactive = go.Figure(go.Scatter(x=recall, y=precision, mode="lines", line={"shape": "hv"}, name="PR"))
    interactive.update_layout(xaxis_title="recall", yaxis_title="precision", title="precision-recall")
    return Evaluation(metrics=summary, precision_recall=curve.astype(np.float64), plot=fig, interactive=interactive)
