"""Logistic regression by full-batch gradient descent; returns the weights and the loss per
epoch (a series `mlbuild plots` draws) and writes the same curve as loss.csv (a plot file)."""

from pathlib import Path

import numpy as np
from mlbuild import Config, rule


class TrainConfig(Config):
    lr: float = 0.1
    epochs: int = 30
    l2: float = 0.0


def loss_and_grad(w: np.ndarray, x: np.ndarray, y: np.ndarray, l2: float) -> tuple[float, np.ndarray]:
    xb = np.hstack([x, np.ones((len(x), 1))])
    p = 1.0 / (1.0 + np.exp(-(xb @ w)))
    eps = 1e-12
    loss = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)) + l2 * float(w[:-1] @ w[:-1])
    grad = xb.T @ (p - y) / len(y)
    grad[:-1] += 2 * l2 * w[:-1]
    return float(loss), grad


@rule(plots=["loss.csv"])
def train(data: dict, config: TrainConfig, out: Path) -> dict:
    w = np.zeros(3)
    losses = []
    for _ in range(config.epochs):
        loss, grad = loss_and_grad(w, data["x_train"], data["y_train"], config.l2)
        losses.append(round(loss, 10))
        w = w - config.lr * grad
    (out / "loss.csv").write_text("epoch,loss\n" + "".join(f"{i},{v!r}\n" for i, v in enumerate(losses)))
    return {"weights": [float(v) for v in w], "train_loss": losses, "final_loss": losses[-1]}
