"""A random forest on the tf-idf features (DVC's ``train`` stage); stored with skops."""

from mlbuild import Config, rule
from sklearn.ensemble import RandomForestClassifier

from features.featurize import Features


class TrainConfig(Config):
    seed: int = 20170428
    n_est: int = 50
    min_split: float = 0.01
    n_jobs: int = 1


@rule()
def train(features: Features, config: TrainConfig) -> RandomForestClassifier:
    model = RandomForestClassifier(
        n_estimators=config.n_est,
        min_samples_split=config.min_split,
        n_jobs=config.n_jobs,
        random_state=config.seed,
    )
    model.fit(features.train, features.train_labels)
    return model
