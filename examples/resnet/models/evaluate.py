"""Evaluate the trained ResNet on the held-out test split."""

from pathlib import Path

import numpy as np
from mlbuild import rule
from safetensors.torch import load_file

from common.seeding import make_deterministic
from models.net import ResNet, predict
from models.train import MODEL_FILE

NUM_CLASSES = 10


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with true class as row and predicted class as column (int64, num_classes x num_classes)."""
    flat = np.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


@rule()
def evaluate(model: Path, data: dict) -> dict:
    """Return the test ``accuracy`` and the 10x10 ``confusion_matrix`` of the model in ``model/``."""
    make_deterministic()
    net = ResNet.from_state_dict(load_file(str(model / MODEL_FILE)))
    predicted = predict(net, data["x_test"])
    labels = np.asarray(data["y_test"], dtype=np.int64)
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "confusion_matrix": confusion_matrix(labels, predicted, NUM_CLASSES),
    }
