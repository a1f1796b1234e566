from mlbuild import target

target(
    name="train",
    rule="train.py:train",
    inputs={"features": "//features:featurize"},
    # n_jobs=1: a forest grown on several threads is not bit-for-bit reproducible.
    config={"seed": 20170428, "n_est": 50, "min_split": 0.01, "n_jobs": 1},
)

target(
    name="evaluate",
    rule="evaluate.py:evaluate",
    inputs={"model": ":train", "features": "//features:featurize"},
)
