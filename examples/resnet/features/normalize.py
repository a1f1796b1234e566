"""Per-channel standardization, fitted on the training split only."""

import numpy as np
from mlbuild import rule

# A channel with (near) zero variance is left unscaled rather than blown up.
MIN_STD = 1e-6

SPLITS = ("train", "val", "test")


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the per-channel mean and std of NCHW images, as float32 arrays of shape (C,)."""
    pixels = images.astype(np.float64)
    mean = pixels.mean(axis=(0, 2, 3))
    std = np.maximum(pixels.std(axis=(0, 2, 3)), MIN_STD)
    return mean.astype(np.float32), std.astype(np.float32)


@rule()
def normalize(split: dict) -> dict:
    """Standardize every split with the train split's statistics (no leakage from val/test).

    Returns the six arrays of the split (images standardized, labels unchanged) plus the
    ``mean`` and ``std`` used, so that a serving path can apply the same transform.
    """
    mean, std = channel_stats(split["x_train"])
    scale = (1.0 / std).reshape(1, -1, 1, 1)
    shift = mean.reshape(1, -1, 1, 1)
    out = {}
    for part in SPLITS:
        out[f"x_{part}"] = ((split[f"x_{part}"] - shift) * scale).astype(np.float32)
        out[f"y_{part}"] = split[f"y_{part}"]
    out["mean"] = mean
    out["std"] = std
    return out
