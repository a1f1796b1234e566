"""Two Gaussian blobs in 2-D, split into train and test."""

import numpy as np
from mlbuild import Config, rule


class PrepareConfig(Config):
    n: int = 600
    noise: float = 1.0
    seed: int = 0
    test_fraction: float = 0.25


@rule
def make_points(config: PrepareConfig) -> dict:
    rng = np.random.default_rng(config.seed)
    half = config.n // 2
    x = np.concatenate([rng.normal(-1.0, config.noise, (half, 2)), rng.normal(1.0, config.noise, (config.n - half, 2))])
    y = np.concatenate([np.zeros(half), np.ones(config.n - half)]).astype(np.int64)
    order = rng.permutation(config.n)
    x, y = x[order], y[order]
    cut = int(config.n * (1 - config.test_fraction))
    return {"x_train": x[:cut], "y_train": y[:cut], "x_test": x[cut:], "y_test": y[cut:]}
