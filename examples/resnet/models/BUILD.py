from mlbuild import target

target(
    name="resnet",
    rule="train.py:train",
    inputs={"data": "//features:normalized"},
    config={"epochs": 3, "lr": 0.05, "batch_size": 64, "seed": 0, "width": 16},
)

target(
    name="eval",
    rule="evaluate.py:evaluate",
    inputs={"model": ":resnet", "data": "//features:normalized"},
)
