from mlbuild import params, target

target(name="points", rule="make.py:make_points", config=params("//params.yaml", "prepare"))
