"""The ResNet example's rules, called directly through the whole chain (no engine involved).

digits -> split -> normalized -> resnet -> eval, with real data and real training, plus the two
promises the example makes to `mlbuild verify`: training is bit-for-bit reproducible in a fresh
process, and every BUILD.py target matches its rule's signature.
"""

import hashlib
import inspect
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec
import numpy as np
import pytest

import mlbuild
from mlbuild.rules import codecs as artifacts

torch = pytest.importorskip("torch", reason="the ResNet example needs torch")
pytest.importorskip("sklearn", reason="the ResNet example needs scikit-learn")
from safetensors.torch import load_file  # noqa: E402  (after the skips: a torch extra)

WORKSPACE = Path(__file__).resolve().parent.parent / "examples" / "resnet"
PACKAGES = ("data", "features", "models")
N_DIGITS = 1797
ACCURACY_FLOOR = 0.85  # chance is 0.1; 3 epochs reach 0.95-0.98 on every seed tried (0-5)


@pytest.fixture(scope="module")
def ws():
    """Put the workspace root on sys.path, as the engine does for a step; undo it all afterwards.

    The example's packages have generic names (`data`, `models`), so their modules are dropped
    from sys.modules, and the process-wide torch settings that seeding changes are restored.
    """
    root = str(WORKSPACE)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    sys.path.insert(0, root)
    try:
        yield WORKSPACE
    finally:
        sys.path.remove(root)
        for name, module in list(sys.modules.items()):
            if (getattr(module, "__file__", None) or "").startswith(root):
                del sys.modules[name]
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def cached(value: dict) -> dict:
    """``value`` as a downstream step receives it: encoded as the engine stores it, then decoded."""
    codec, data = artifacts.encode(value)
    assert codec == "msgpack", "a dict of arrays and plain data is stored as msgpack, not pickled"
    return artifacts.decode(codec, data, dict)


@pytest.fixture(scope="module")
def digits(ws):
    from data.digits import load_digits

    return load_digits()


@pytest.fixture(scope="module")
def split(ws, digits):
    from data.split import SplitConfig, split

    return split(cached(digits), SplitConfig())


@pytest.fixture(scope="module")
def normalized(ws, split):
    from features.normalize import normalize

    return normalize(cached(split))


@pytest.fixture(scope="module")
def trained(ws, normalized, tmp_path_factory):
    """(metrics, files dir) of one training run with the default TrainConfig."""
    from models.train import TrainConfig, train

    out = tmp_path_factory.mktemp("resnet")
    return train(cached(normalized), TrainConfig(), out), out


@pytest.fixture(scope="module")
def evaluated(ws, trained, normalized):
    from models.evaluate import evaluate

    return evaluate(trained[1], cached(normalized))


def test_digits_are_nchw_float32_in_unit_range(digits):
    assert set(digits) == {"images", "labels"}
    images, labels = digits["images"], digits["labels"]
    assert images.shape == (N_DIGITS, 1, 8, 8) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    assert labels.shape == (N_DIGITS,) and labels.dtype == np.int64
    assert set(np.unique(labels)) == set(range(10))


def test_split_partitions_the_digits(digits, split):
    assert set(split) == {f"{xy}_{part}" for xy in "xy" for part in ("train", "val", "test")}
    sizes = {part: len(split[f"y_{part}"]) for part in ("train", "val", "test")}
    assert sizes == {"train": 1257, "val": 270, "test": 270}
    for part in ("train", "val", "test"):
        assert split[f"x_{part}"].shape == (sizes[part], 1, 8, 8)
        assert split[f"x_{part}"].dtype == np.float32 and split[f"y_{part}"].dtype == np.int64
    # Every digit lands in exactly one split: the class counts and the pixel mass add up.
    labels = np.concatenate([split[f"y_{part}"] for part in ("train", "val", "test")])
    np.testing.assert_array_equal(np.bincount(labels), np.bincount(digits["labels"]))
    pixels = sum(
        float(split[f"x_{part}"].sum(dtype=np.float64)) for part in ("train", "val", "test")
    )
    assert pixels == pytest.approx(float(digits["images"].sum(dtype=np.float64)), rel=1e-12)


def test_split_depends_on_the_seed_only(ws, digits, split):
    from data.split import SplitConfig
    from data.split import split as split_rule

    again = split_rule(digits, SplitConfig())
    for key in split:
        np.testing.assert_array_equal(again[key], split[key])
    other = split_rule(digits, SplitConfig(seed=1))
    assert not np.array_equal(other["y_test"], split["y_test"])


def test_split_config_rejects_fractions_that_leave_no_training_data(ws):
    from data.split import SplitConfig

    with pytest.raises(ValueError, match="training data"):
        SplitConfig(val_fraction=0.5, test_fraction=0.5)


def test_normalization_uses_train_statistics_only(split, normalized):
    mean, std = normalized["mean"], normalized["std"]
    assert mean.shape == std.shape == (1,) and mean.dtype == std.dtype == np.float32
    train = split["x_train"].astype(np.float64)
    np.testing.assert_allclose(mean, train.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std, train.std(axis=(0, 2, 3)), rtol=1e-6)
    x_train = normalized["x_train"].astype(np.float64)
    assert abs(x_train.mean()) < 1e-5 and x_train.std() == pytest.approx(1.0, abs=1e-5)
    for part in ("train", "val", "test"):
        assert normalized[f"x_{part}"].dtype == np.float32
        np.testing.assert_array_equal(normalized[f"y_{part}"], split[f"y_{part}"])
        np.testing.assert_allclose(
            normalized[f"x_{part}"] * std[0] + mean[0], split[f"x_{part}"], atol=1e-6
        )


def test_training_writes_the_weights_and_returns_plain_metrics(ws, trained):
    from models.net import ResNet

    metrics, out = trained
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]
    state = load_file(str(out / "model.safetensors"))
    assert state.keys() == ResNet(width=16).state_dict().keys()
    assert state["stem.0.weight"].shape == (16, 1, 3, 3)
    assert metrics["epochs"] == 3
    for name in ("train_loss", "train_accuracy", "val_accuracy"):
        assert len(metrics[name]) == 3 and all(type(v) is float for v in metrics[name])
    assert (
        type(metrics["final_loss"]) is float and metrics["final_loss"] == metrics["train_loss"][-1]
    )
    assert metrics["train_loss"][-1] < metrics["train_loss"][0]
    assert metrics["train_accuracy"][-1] > ACCURACY_FLOOR
    assert cached(metrics) == metrics


def test_evaluation_on_the_test_split(evaluated, normalized):
    assert set(evaluated) == {"accuracy", "confusion_matrix"}
    accuracy, matrix = evaluated["accuracy"], evaluated["confusion_matrix"]
    assert type(accuracy) is float and accuracy > ACCURACY_FLOOR
    assert matrix.shape == (10, 10) and matrix.dtype == np.int64
    np.testing.assert_array_equal(
        matrix.sum(axis=1), np.bincount(normalized["y_test"], minlength=10)
    )
    assert accuracy == np.trace(matrix) / matrix.sum()
    np.testing.assert_array_equal(cached(evaluated)["confusion_matrix"], matrix)


def test_evaluation_of_an_untrained_model_stays_below_the_floor(ws, normalized, tmp_path):
    """The accuracy floor is one a broken (here: never trained) model does not reach."""
    from models.evaluate import evaluate
    from models.net import ResNet
    from safetensors.torch import save_file

    torch.manual_seed(0)
    save_file(ResNet(width=16).state_dict(), str(tmp_path / "model.safetensors"))
    assert evaluate(tmp_path, normalized)["accuracy"] < ACCURACY_FLOOR


TRAIN_IN_A_FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    sys.path.insert(0, sys.argv[1])
    from data.digits import load_digits
    from data.split import SplitConfig, split
    from features.normalize import normalize
    from models.train import TrainConfig, train

    train(normalize(split(load_digits(), SplitConfig())), TrainConfig(), Path(sys.argv[2]))
    """
)


def test_training_is_bit_reproducible_across_processes(trained, tmp_path):
    """`mlbuild verify` re-runs training elsewhere and compares bytes: they must match."""
    outs = [tmp_path / "run1", tmp_path / "run2"]
    runs = []
    for out in outs:
        out.mkdir()
        command = [sys.executable, "-c", TRAIN_IN_A_FRESH_PROCESS, str(WORKSPACE), str(out)]
        runs.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for run in runs:
        output, _ = run.communicate(timeout=300)
        assert run.returncode == 0, output.decode()

    def digest(out: Path) -> str:
        return hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()

    assert digest(outs[0]) == digest(outs[1]) == digest(trained[1])


def build_targets(package: str, monkeypatch) -> dict[str, dict]:
    """The targets a BUILD.py declares, by name (collected by stubbing `mlbuild.target`)."""
    declared = {}
    monkeypatch.setattr(mlbuild, "target", lambda **kw: declared.setdefault(kw["name"], kw))
    runpy.run_path(str(WORKSPACE / package / "BUILD.py"))
    return declared


def test_build_files_match_the_rule_signatures(ws, monkeypatch):
    """Every input is a parameter and back, configs convert, `Path` inputs name a files output."""
    targets = {
        f"//{package}:{name}": dict(spec, package=package)
        for package in PACKAGES
        for name, spec in build_targets(package, monkeypatch).items()
    }
    assert set(targets) == {
        "//data:digits",
        "//data:split",
        "//features:normalized",
        "//models:resnet",
        "//models:eval",
    }

    def rule_of(spec: dict):
        file, function = spec["rule"].split(":")
        module = __import__(f"{spec['package']}.{file.removesuffix('.py')}", fromlist=[function])
        return inspect.signature(getattr(module, function))

    for label, spec in targets.items():
        params = rule_of(spec).parameters
        inputs = spec.get("inputs", {})
        assert set(inputs) == set(params) - {"config", "out"}, label
        if "config" in params:
            msgspec.convert(spec.get("config", {}), type=params["config"].annotation)
        else:
            assert not spec.get("config"), label
        for name, dep in inputs.items():
            dep = f"//{spec['package']}{dep}" if dep.startswith(":") else dep
            assert dep in targets, f"{label}: unknown input {dep}"
            if params[name].annotation is Path:
                assert "out" in rule_of(targets[dep]).parameters, f"{label}: {dep} writes no files"
