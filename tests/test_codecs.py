"""Artifact codecs: round trips (hypothesis), the same bytes in a fresh process, no pickle,
errors that name the failing part of a value, optional libraries imported only when used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "support"))
import codec_values as cv  # noqa: E402

import mlbuild  # noqa: E402
from mlbuild.rules import codecs  # noqa: E402
from mlbuild.testing import assert_no_pickle, check_codec, no_unpickling  # noqa: E402

# Each example fits or draws something: no shrinking (minutes per failure here), few examples.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate)
SLOW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=PHASES)
SUPPORT = str(Path(__file__).parent / "support")


def _roundtrip(value: Any, equal: Any, codec: str) -> Any:
    got, data = check_codec(value, equal=equal, expect_codec=codec)
    with no_unpickling():
        return codecs.decode(got, data)


# -- pandas / polars ------------------------------------------------------------------------

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)


def _frames_equal(a: Any, b: Any) -> bool:
    import pandas as pd

    pd.testing.assert_frame_equal(a, b, check_exact=True)
    return True


@SLOW
@given(st.data())
def test_dataframes_round_trip_with_their_index(data: st.DataObject) -> None:
    import pandas as pd
    from hypothesis.extra import pandas as hpd

    frame = data.draw(hpd.data_frames(
        [hpd.column("f", dtype=float), hpd.column("i", dtype=np.int64), hpd.column("b", dtype=bool),
         hpd.column("s", elements=text)],
        index=hpd.indexes(elements=text, max_size=12, unique=True) if data.draw(st.booleans()) else hpd.range_indexes(max_size=12),
    ))
    frame.index.name = data.draw(st.sampled_from([None, "id"]))
    # pandas' own string dtype: an object column of str comes back as one (same values).
    frame["s"] = frame["s"].astype("str")
    if frame.index.dtype == object:
        frame.index = frame.index.astype("str")
    back = _roundtrip(frame, _frames_equal, "arrow")
    assert isinstance(back, pd.DataFrame) and list(back.index) == list(frame.index)
    series = frame["f"]
    back_s = _roundtrip(series, lambda a, b: a.equals(b) and a.name == b.name, "arrow")
    assert isinstance(back_s, pd.Series)


@SLOW
@given(st.lists(st.one_of(st.none(), st.integers(-(2**40), 2**40)), max_size=20))
def test_polars_frames_and_series_round_trip(values: list[int | None]) -> None:
    import polars as pl

    frame = pl.DataFrame({"v": pl.Series(values, dtype=pl.Int64), "s": [str(v) for v in values]})
    _roundtrip(frame, lambda a, b: a.equals(b), "arrow")
    _roundtrip(frame["v"], lambda a, b: a.equals(b) and a.name == b.name, "arrow")


# -- scipy.sparse ----------------------------------------------------------------------------


def _sparse_equal(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape and (a != b).nnz == 0


@SLOW
@given(
    st.integers(1, 30), st.integers(1, 30), st.floats(0, 1), st.integers(0, 2**31),
    st.sampled_from(["csr", "csc", "coo", "bsr", "dia"]), st.sampled_from([np.float64, np.float32, np.int64, np.bool_]),
    st.booleans(),
)
def test_sparse_matrices_round_trip(rows: int, cols: int, density: float, seed: int, fmt: str, dtype: Any, array: bool) -> None:
    import scipy.sparse as sp

    m = sp.random(rows, cols, density=density, random_state=seed, format="coo").astype(dtype)
    m = (sp.coo_array(m) if array else m).asformat(fmt)
    _roundtrip(m, _sparse_equal, "sparse")


def test_a_stored_sparse_matrix_opens_with_scipy_load_npz(tmp_path: Path) -> None:
    import scipy.sparse as sp

    m = cv.make_sparse()
    codec, data = codecs.encode(m)
    (tmp_path / "m.npz").write_bytes(data)
    assert _sparse_equal(sp.load_npz(tmp_path / "m.npz"), m)
    assert codecs.suffix_of(codec) == ".npz"


# -- scikit-learn --------------------------------------------------------------------------


def _estimators_equal(a: Any, b: Any) -> bool:
    x = np.random.RandomState(1).rand(10, 4)
    return type(a) is type(b) and repr(a.get_params()) == repr(b.get_params()) and bool((a.predict(x) == b.predict(x)).all())


@settings(max_examples=6, deadline=None, phases=PHASES)
@given(st.integers(1, 6), st.one_of(st.none(), st.integers(1, 4)), st.integers(0, 100), st.floats(0.01, 100))
def test_sklearn_models_round_trip_through_skops(trees: int, depth: int | None, seed: int, c: float) -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.RandomState(seed)
    x, y = rng.rand(40, 4), np.arange(40) % 2
    forest = RandomForestClassifier(n_estimators=trees, max_depth=depth, random_state=seed, n_jobs=1).fit(x, y)
    _roundtrip(forest, _estimators_equal, "skops")
    _roundtrip(LogisticRegression(C=c).fit(x, y), _estimators_equal, "skops")


class _Untrusted:
    """Stands for a team's own class inside a model (skops does not know it)."""


def test_models_holding_untrusted_types_need_trust_types(monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.preprocessing import FunctionTransformer

    model = FunctionTransformer(func=cv.double)
    codec, data = codecs.encode(model)
    with pytest.raises(codecs.EncodingError, match=r"does not trust: codec_values\.double.*trust_types"):
        codecs.decode(codec, data)
    monkeypatch.setenv("MLBUILD_TRUSTED_TYPES", "codec_values.double")
    assert codecs.decode(codec, data).func is cv.double
    monkeypatch.delenv("MLBUILD_TRUSTED_TYPES")
    from mlbuild.rules.codecs import estimator

    monkeypatch.setattr(estimator, "_trusted", set())
    mlbuild.trust_types("codec_values.double")
    assert codecs.decode(codec, data).func is cv.double


# -- torch -------------------------------------------------------------------------------


def _modules_equal(a: Any, b: Any) -> bool:
    import torch

    sa, sb = a.state_dict(), b.state_dict()
    return type(a) is type(b) and sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@SLOW
@given(st.integers(1, 8), st.integers(1, 3), st.integers(0, 1000))
def test_torch_modules_round_trip_as_state_dict_and_class(width: int, depth: int, seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    back = _roundtrip(cv.MLP(width, depth=depth), _modules_equal, "torch-module")
    assert (back.width, back.depth) == (width, depth)


def test_a_torch_module_without_its_constructor_arguments_is_refused_with_a_hint() -> None:
    import torch

    with pytest.raises(codecs.EncodingError, match=r"^return value\[\"net\"\]: .*constructor argument 'n'.*init_kwargs"):
        codecs.encode({"net": cv.Opaque(3)})

    class Local(torch.nn.Module):
        pass

    with pytest.raises(codecs.EncodingError, match=r"not importable by name: define the module class at the top level"):
        codecs.encode(Local())


def test_a_torch_module_blob_naming_a_non_module_class_is_not_built() -> None:
    from safetensors.torch import load, save

    codec, data = codecs.encode(cv.make_module())
    forged = save(load(data), metadata={"mlbuild.class": "os:system", "mlbuild.init": "{}"})
    with pytest.raises(codecs.EncodingError, match="not a torch.nn.Module subclass"):
        codecs.decode(codec, forged)


@SLOW
@given(st.integers(1, 6), st.integers(1, 4))
def test_tensor_datasets_round_trip(n: int, width: int) -> None:
    import torch
    from torch.utils.data import TensorDataset

    ds = TensorDataset(torch.randn(n, width), torch.arange(n))
    _roundtrip(ds, lambda a, b: all(torch.equal(x, y) for x, y in zip(a.tensors, b.tensors, strict=True)), "tensor-dataset")


# -- figures and images -------------------------------------------------------------------

finite = st.floats(-1e6, 1e6, allow_nan=False)


@SLOW
@given(st.lists(finite, min_size=1, max_size=10), text)
def test_plotly_figures_round_trip_as_json(ys: list[float], title: str) -> None:
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(y=ys), layout={"title": {"text": title}})
    _roundtrip(fig, lambda a, b: a.to_dict() == b.to_dict(), "plotly")


@settings(max_examples=3, deadline=None, phases=PHASES)
@given(st.lists(finite, min_size=2, max_size=6))
def test_matplotlib_figures_are_stored_drawn_png_and_svg(ys: list[float]) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot(ys)
    codec, data = codecs.encode(fig)
    assert codec == "matplotlib" and codecs.encode(fig) == (codec, data)
    assert_no_pickle(data)
    drawn = codecs.decode(codec, data)
    assert drawn.png.startswith(b"\x89PNG") and b"<svg" in drawn.svg
    assert b"Date" not in drawn.svg and b"Software" not in drawn.png


@SLOW
@given(st.sampled_from(["L", "RGB", "RGBA"]), st.integers(1, 16), st.integers(1, 16), st.integers(0, 2**31))
def test_pil_images_round_trip_as_png(mode: str, w: int, h: int, seed: int) -> None:
    from PIL import Image

    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    arr = np.random.default_rng(seed).integers(0, 256, size=(h, w, channels), dtype=np.uint8)
    image = Image.fromarray(arr[:, :, 0] if channels == 1 else arr, mode)
    back = _roundtrip(image, lambda a, b: (a.mode, a.size, a.tobytes()) == (b.mode, b.size, b.tobytes()), "png")
    assert back.format == "PNG"


# -- plain data, nesting ------------------------------------------------------------------


@SLOW
@given(text, st.datetimes(timezones=st.just(__import__("datetime").UTC)), st.sampled_from(list(cv.Color)),
       finite, finite, st.lists(finite, max_size=5))
def test_dataclasses_namedtuples_enums_datetimes_paths_round_trip(name: str, when: Any, color: Any, x: float, y: float, scores: list[float]) -> None:
    from pathlib import PurePosixPath

    report = cv.Report(name, when, PurePosixPath("a") / name.replace("/", "_").replace("\x00", "") if name else PurePosixPath("a"),
                       color, cv.Point(x, y), scores)
    codec, data = codecs.encode(report)
    assert codec == "msgpack" and codecs.encode(report)[1] == data
    assert codecs.decode(codec, data, cv.Report) == report


def test_values_of_every_codec_nest_in_containers_and_come_back() -> None:
    import pandas as pd

    value = cv.make_nested()
    codec, data = codecs.encode(value)
    assert codec == "msgpack"
    assert_no_pickle(data)
    with no_unpickling():
        back = codecs.decode(codec, data)
    assert _sparse_equal(back["features"], value["features"])
    pd.testing.assert_frame_equal(back["frame"], value["frame"])
    assert _estimators_equal(back["model"], value["model"])
    # Unannotated, the dataclass comes back as plain data (its type comes from a reader's annotation).
    assert back["meta"]["where"] == "data/x.csv" and back["meta"]["color"] == "blue"
    back["meta"] = value["meta"]
    assert codecs.encode(back) == (codec, data)
    # Inspection leaves codec values encoded: no library of theirs is needed to list them.
    seen = codecs.decode_numpy(codec, data)
    assert {k: getattr(v, "codec", None) for k, v in seen.items()} == {"features": "sparse", "frame": "arrow", "model": "skops", "meta": None}


def test_every_codec_gives_the_same_bytes_in_a_fresh_process() -> None:
    script = (
        "import json, sys, xxhash\n"
        f"sys.path.insert(0, {SUPPORT!r})\n"
        "import codec_values as cv\n"
        "from mlbuild.rules import codecs\n"
        "out = {}\n"
        "for name in cv.FACTORIES:\n"
        "    codec, data = codecs.encode(getattr(cv, name)())\n"
        "    out[name] = [codec, xxhash.xxh3_128_hexdigest(data)]\n"
        "print(json.dumps(out))\n"
    )
    import xxhash

    fresh = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, check=True, text=True).stdout)
    here = {}
    for name in cv.FACTORIES:
        codec, data = codecs.encode(getattr(cv, name)())
        assert_no_pickle(data)
        here[name] = [codec, xxhash.xxh3_128_hexdigest(data)]
    assert fresh == here


# -- errors ---------------------------------------------------------------------------------


def test_a_value_that_cannot_be_encoded_names_its_path_and_what_to_return() -> None:
    with pytest.raises(codecs.EncodingError) as err:
        codecs.encode({"features": np.array([object()], dtype=object), "ok": 1})
    assert str(err.value).startswith('return value["features"]: ndarray of object dtype cannot be encoded; give it a numeric')
    with pytest.raises(codecs.EncodingError, match=r'^return value\["rows"\]\[1\]: generator cannot be encoded; return a list'):
        codecs.encode({"rows": [1, (x for x in range(3))]})
    with pytest.raises(codecs.EncodingError, match=r"^return value\.point: .*_Untrusted cannot be encoded; .*register_codec"):
        codecs.encode(cv.Report("r", cv.make_plain().when, cv.make_plain().where, cv.Color.RED, _Untrusted(), []))  # type: ignore[arg-type]


def test_optional_libraries_are_imported_only_for_values_of_their_type() -> None:
    heavy = ["pandas", "pyarrow", "polars", "scipy", "sklearn", "skops", "torch", "plotly", "matplotlib", "PIL"]
    script = (
        "import sys, numpy as np, mlbuild, mlbuild.testing\n"
        "from mlbuild.rules import codecs\n"
        "c, d = codecs.encode({'a': [1, 2.5, 'x'], 'arr': np.ones(3)})\n"
        "codecs.decode(c, d)\n"
        f"print([m for m in {heavy!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True, text=True).stdout
    assert out.strip() == "[]"


# -- a team's own codec -------------------------------------------------------------------


class Grid:
    def __init__(self, cells: list[list[int]]) -> None:
        self.cells = cells

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Grid) and other.cells == self.cells


def test_register_codec_stores_a_teams_type_and_check_codec_tests_it() -> None:
    mlbuild.register_codec(Grid, lambda g: json.dumps(g.cells).encode(), lambda b: Grid(json.loads(b)), "test.grid")
    check_codec(Grid([[1, 2], [3, 4]]), expect_codec="test.grid")
    codec, data = codecs.encode({"g": Grid([[5]])})
    assert codecs.decode(codec, data)["g"] == Grid([[5]])
    with pytest.raises(ValueError, match="reserved"):
        mlbuild.register_codec(Grid, bytes, bytes, "msgpack")
    with pytest.raises(ValueError, match="already registered"):
        mlbuild.register_codec(_Untrusted, bytes, bytes, "test.grid")


def test_check_codec_catches_a_nondeterministic_codec() -> None:
    import itertools

    counter = itertools.count()

    class Stamped:
        pass

    mlbuild.register_codec(Stamped, lambda v: str(next(counter)).encode(), lambda b: Stamped(), "test.stamped")
    with pytest.raises(AssertionError, match="different bytes"):
        check_codec(Stamped(), equal=lambda a, b: True)


def test_no_unpickling_catches_a_decoder_that_unpickles() -> None:
    import pickle

    class Sneaky:
        pass

    mlbuild.register_codec(Sneaky, lambda v: b"x", lambda b: pickle.loads(pickle.dumps(1)), "test.sneaky")
    with pytest.raises(AssertionError, match="pickle"):
        check_codec(Sneaky(), equal=lambda a, b: True)
