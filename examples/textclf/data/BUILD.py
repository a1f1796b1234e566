from mlbuild import File, target

target(
    name="prepare",
    rule="prepare.py:prepare",
    inputs={"posts": File("posts.tsv")},
    config={"split": 0.20, "seed": 20170428},
)
