"""How ``posts.tsv`` was made (run once; the file is committed, as a real source would be).

    python data/make_posts.py > data/posts.tsv

Stand-in for DVC's get-started data (StackOverflow posts, label: is it an R question?):
synthetic posts from a small vocabulary, with shared words and noise so that a classifier
is good but not perfect. Seeded, so running it again gives the same file.
"""

import random

COMMON = ("how do i", "why does my", "error when", "best way to", "cannot get", "help with", "question about",
          "loop over", "plot the", "read a file", "merge two", "filter rows", "speed up", "install package")
R_WORDS = ("dataframe", "ggplot2", "dplyr", "tidyverse", "vector", "factor", "cran", "rstudio", "lapply", "shiny",
           "data.table", "knitr", "tibble", "mutate", "summarise")
PY_WORDS = ("pandas", "numpy", "matplotlib", "list", "dict", "pip", "jupyter", "lambda", "django", "flask",
            "virtualenv", "asyncio", "pytest", "comprehension", "dataframe")
SHARED = ("csv", "regex", "string", "function", "date", "json", "api", "sql", "memory", "column", "index", "plot")


def post(rng: random.Random, is_r: bool) -> str:
    own = R_WORDS if is_r else PY_WORDS
    other = PY_WORDS if is_r else R_WORDS
    words = [rng.choice(COMMON)]
    for _ in range(rng.randint(4, 12)):
        roll = rng.random()
        words.append(rng.choice(own if roll < 0.35 else other if roll < 0.45 else SHARED))
    return " ".join(words)


def main() -> None:
    rng = random.Random(20170428)
    print("id\tlabel\ttext")
    for i in range(2000):
        is_r = rng.random() < 0.3
        print(f"{i}\t{int(is_r)}\t{post(rng, is_r)}")


if __name__ == "__main__":
    main()
