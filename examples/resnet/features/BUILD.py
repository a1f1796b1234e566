from mlbuild import target

target(
    name="normalized",
    rule="normalize.py:normalize",
    inputs={"split": "//data:split"},
)
