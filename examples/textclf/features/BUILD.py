from mlbuild import target

target(
    name="featurize",
    rule="featurize.py:featurize",
    inputs={"data": "//data:prepare"},
    config={"max_features": 100, "ngrams": 1},
)
