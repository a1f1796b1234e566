from mlbuild import params, target

target(
    name="train",
    rule="train.py:train",
    inputs={"data": "//data:points"},
    config=params("//params.yaml", "train"),
)

target(name="evaluate", rule="evaluate.py:evaluate", inputs={"model": ":train", "data": "//data:points"})
