"""Read the posts and split them into train and test DataFrames (DVC's ``prepare`` stage)."""

from pathlib import Path

import numpy as np
import pandas as pd
from mlbuild import Config, rule


class PrepareConfig(Config):
    split: float = 0.20  # the fraction of posts held out for testing
    seed: int = 20170428


@rule()
def prepare(posts: Path, config: PrepareConfig) -> dict[str, pd.DataFrame]:
    """``{"train": ..., "test": ...}``: columns ``label`` (1 = an R question) and ``text``,
    indexed by post id. A seeded permutation decides the split (the same in any process)."""
    frame = pd.read_csv(posts, sep="\t", index_col="id", dtype={"label": np.int64, "text": "str"})
    frame["text"] = frame["text"].str.lower().str.strip()
    order = np.random.default_rng(config.seed).permutation(len(frame))
    n_test = int(round(config.split * len(frame)))
    test, train = frame.iloc[np.sort(order[:n_test])], frame.iloc[np.sort(order[n_test:])]
    return {"train": train, "test": test}
