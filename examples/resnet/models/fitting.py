"""The training loop: optimizer, data order, epochs."""

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from models.net import predict


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay conv and linear weights only; BatchNorm parameters and biases are left alone."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(model: nn.Module, config) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum over ``param_groups``."""
    return torch.optim.SGD(
        param_groups(model, config.weight_decay),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=True,
    )


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Yield index batches of a fresh permutation drawn from ``generator`` (the last may be short)."""
    order = torch.randperm(n, generator=generator)
    yield from order.split(batch_size)


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
) -> tuple[float, float]:
    """Run one pass over (x, y); return the mean loss and the accuracy on the batches seen."""
    model.train()
    total_loss, correct = 0.0, 0
    for index in shuffled_batches(len(x), batch_size, generator):
        logits = model(x[index])
        loss = nn.functional.cross_entropy(logits, y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(index)
        correct += int((logits.argmax(dim=1) == y[index]).sum())
    return total_loss / len(x), correct / len(x)


def fit_epochs(
    model: nn.Module, data: dict, config, generator: torch.Generator
) -> dict[str, list[float]]:
    """Train ``model`` on ``data``'s train split for ``config.epochs`` epochs.

    Returns per-epoch ``train_loss``, ``train_accuracy`` and ``val_accuracy``.
    """
    # torch.tensor copies: decoded artifacts may be read-only arrays, which torch would warn about.
    x, y = torch.tensor(data["x_train"]), torch.tensor(data["y_train"])
    optimizer = make_optimizer(model, config)
    history = {"train_loss": [], "train_accuracy": [], "val_accuracy": []}
    for _ in range(config.epochs):
        loss, accuracy = train_one_epoch(model, optimizer, x, y, config.batch_size, generator)
        val_accuracy = float(np.mean(predict(model, data["x_val"]) == data["y_val"]))
        history["train_loss"].append(loss)
        history["train_accuracy"].append(accuracy)
        history["val_accuracy"].append(val_accuracy)
    return history
