from mlbuild import target

target(
    name="digits",
    rule="digits.py:load_digits",
)

target(
    name="split",
    rule="split.py:split",
    inputs={"digits": ":digits"},
    config={"seed": 0, "val_fraction": 0.15, "test_fraction": 0.15},
)
