"""tf-idf features of the posts as sparse matrices (DVC's ``featurize`` stage, without the
pickles: a ``csr_matrix`` is stored as its arrays)."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from mlbuild import Config, rule
from sklearn.feature_extraction.text import TfidfVectorizer


class FeaturizeConfig(Config):
    max_features: int = 100
    ngrams: int = 1


@dataclass
class Features:
    """The train and test matrices (posts x terms), their labels and the terms."""

    train: sp.csr_matrix
    test: sp.csr_matrix
    train_labels: np.ndarray
    test_labels: np.ndarray
    terms: list[str]


@rule()
def featurize(data: dict[str, pd.DataFrame], config: FeaturizeConfig) -> Features:
    """Fit the vocabulary and idf weights on the training posts only, then transform both."""
    vectorizer = TfidfVectorizer(max_features=config.max_features, ngram_range=(1, config.ngrams),
                                 token_pattern=r"(?u)\b[\w.]+\b", dtype=np.float32)
    train, test = data["train"], data["test"]
    x_train = sp.csr_matrix(vectorizer.fit_transform(train["text"]))
    x_test = sp.csr_matrix(vectorizer.transform(test["text"]))
    return Features(
        train=x_train,
        test=x_test,
        train_labels=train["label"].to_numpy(),
        test_labels=test["label"].to_numpy(),
        terms=[str(t) for t in vectorizer.get_feature_names_out()],
    )
