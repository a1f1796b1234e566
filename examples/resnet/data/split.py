"""A deterministic train/val/test split of the digits."""

import numpy as np
from mlbuild import Config, rule


class SplitConfig(Config):
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15

    def __post_init__(self) -> None:
        if self.val_fraction < 0 or self.test_fraction < 0:
            raise ValueError("val_fraction and test_fraction MUST be >= 0")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction MUST leave some training data (< 1)")


@rule()
def split(digits: dict, config: SplitConfig) -> dict:
    """Shuffle with a seeded permutation and cut it into train, val and test.

    Returns ``x_train, y_train, x_val, y_val, x_test, y_test``; the same seed gives the same
    split in any process on any machine (numpy's PCG64 stream is fixed).
    """
    images, labels = digits["images"], digits["labels"]
    n = len(labels)
    order = np.random.default_rng(config.seed).permutation(n)
    n_test = int(round(n * config.test_fraction))
    n_val = int(round(n * config.val_fraction))
    parts = {
        "test": order[:n_test],
        "val": order[n_test : n_test + n_val],
        "train": order[n_test + n_val :],
    }
    out = {}
    for part in ("train", "val", "test"):
        index = np.sort(parts[part])
        out[f"x_{part}"] = images[index]
        out[f"y_{part}"] = labels[index]
    return out
