"""Artifact encodings: canonical, non-executable bytes for the values rules return.

=============  =================================================  ======================
codec          values                                             materialized as
=============  =================================================  ======================
``npy``        numpy arrays                                       ``.npy``
``safetensors`` torch tensors, ``{name: tensor}``                 ``.safetensors``
``msgpack``    plain data, dataclasses, NamedTuples, enums,       ``.msgpack``
               datetimes, Paths, Structs — with any of the
               others nested inside (extension types)
``arrow``      pandas / polars DataFrames and Series              ``.arrow`` (Arrow IPC)
``sparse``     scipy.sparse matrices and arrays                   ``.npz`` (``load_npz``)
``skops``      scikit-learn estimators and pipelines              ``.skops``
``torch-module`` ``nn.Module``: state_dict + class path            ``.safetensors``
``tensor-dataset`` ``TensorDataset``: its tensors                 ``.safetensors``
``plotly``     plotly figures                                     ``.plotly.json``
``matplotlib`` matplotlib figures, drawn (PNG + SVG)              ``.msgpack``
``png``        PIL images                                         ``.png``
=============  =================================================  ======================

Every encoding is deterministic (the same value gives the same bytes in any process) and
every decoder reads data only: nothing is unpickled unless a rule opted in (``pickle``, never
shared remotely). Which codec a value gets is found by its type's *name*, so no optional
library (pyarrow, skops, scipy, pandas, plotly, matplotlib) is imported unless a value of its
type is stored or read. Teams add their own with ``mlbuild.register_codec``.
"""

from __future__ import annotations

import sys
from typing import Any

from mlbuild.rules.codecs import arrays, plain
from mlbuild.rules.codecs.registry import (
    Codec,
    EncodingError,
    codec_for,
    codec_named,
    register,
    register_codec,
    suffix_of,
)

__all__ = [
    "Codec",
    "EncodingError",
    "codec_for",
    "decode",
    "decode_numpy",
    "encode",
    "read_safetensors",
    "register_codec",
    "suffix_of",
    "to_display",
]

read_safetensors = arrays.read_safetensors


def _lazy(module: str, attr: str) -> Any:
    """``module.attr``, imported on first call (so registering imports nothing)."""

    def call(arg: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(f"mlbuild.rules.codecs.{module}"), attr)(arg)

    call.__qualname__ = f"{module}.{attr}"
    return call


def _builtin(name: str, types: tuple[str, ...], module: str, enc: str, dec: str, suffix: str, extra: str) -> None:
    register(Codec(name, types, _lazy(module, enc), _lazy(module, dec), suffix, extra=extra, builtin=True))


_builtin("arrow", ("pandas:DataFrame", "pandas:Series", "polars:DataFrame", "polars:Series"),
         "frame", "encode", "decode", ".arrow", "frame")
_builtin("sparse", ("scipy:_spbase", "scipy:spmatrix"), "sparse", "encode", "decode", ".npz", "sparse")
_builtin("skops", ("sklearn:BaseEstimator",), "estimator", "encode", "decode", ".skops", "sklearn")
_builtin("torch-module", ("torch:Module",), "torch_module", "encode", "decode", ".safetensors", "ml")
_builtin("tensor-dataset", ("torch:TensorDataset",), "torch_module", "encode_dataset", "decode_dataset",
         ".safetensors", "ml")
_builtin("plotly", ("plotly:BaseFigure",), "figure", "encode_plotly", "decode_plotly", ".plotly.json", "plots")
_builtin("matplotlib", ("matplotlib:Figure",), "figure", "encode_matplotlib", "decode_matplotlib",
         ".msgpack", "plots")
_builtin("png", ("PIL:Image",), "figure", "encode_pil", "decode_pil", ".png", "plots")


def encode(value: Any, allow_pickle: bool = False) -> tuple[str, bytes]:
    """Encode a rule's return value; returns (codec, bytes). Raises EncodingError naming the
    part of the value that failed (``return value["features"]: …``) and what to return instead."""
    np = sys.modules.get("numpy")
    try:
        if np is not None and isinstance(value, np.ndarray):
            return "npy", arrays.encode_npy(value)
        if arrays.is_tensor(value) or arrays.is_tensor_dict(value):
            return "safetensors", arrays.encode_safetensors(value)
        codec = codec_for(value)
        if codec is not None:
            return codec.name, codec.encode(value)
        return "msgpack", plain.encode(value)
    except EncodingError as exc:
        if allow_pickle:
            import pickle

            return "pickle", pickle.dumps(value, protocol=5)
        where = plain.locate(value)
        raise EncodingError(where or f"return value: {exc}") from None


def decode(codec: str, data: bytes, annotation: Any = Any, allow_pickle: bool = False) -> Any:
    """Decode bytes written by ``encode``; msgpack values are converted to ``annotation``."""
    if codec == "npy":
        value = arrays.decode_npy(data)
    elif codec == "safetensors":
        value = arrays.decode_safetensors(data)
    elif codec == "msgpack":
        return plain.decode(data, annotation)
    elif codec == "pickle":
        if not allow_pickle:
            raise EncodingError("refusing to unpickle an artifact: the rule did not opt into pickle")
        import pickle

        return pickle.loads(data)
    else:
        value = codec_named(codec).decode(data)
    if annotation is not Any and isinstance(annotation, type) and not isinstance(value, annotation):
        raise EncodingError(f"a stored {plain.type_name(value)} is not a {annotation.__qualname__}")
    return value


def decode_numpy(codec: str, data: bytes) -> Any:
    """Decode an artifact for inspection: arrays and tensors as numpy arrays, registered
    codecs' values as ``Encoded`` (read by the UI and diffs without their libraries), never
    importing torch, never unpickling (a pickled artifact raises EncodingError)."""
    if codec == "npy":
        return arrays.decode_npy(data)
    if codec == "safetensors":
        tensors = arrays.read_safetensors(data)
        return tensors["__tensor__"] if set(tensors) == {"__tensor__"} else tensors
    if codec == "msgpack":
        return plain.decode_inspect(data)
    if codec in ("pickle", "tree"):
        raise EncodingError(f"{codec} artifacts are not decoded for inspection")
    return plain.Encoded(codec, data)


def to_display(codec: str, data: bytes) -> Any:
    """A JSON-friendly rendering of a small value, for ``mlbuild show``."""
    return _summarize(decode_numpy(codec, data))


def _summarize(value: Any) -> Any:
    import msgspec

    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        if value.size <= 16:
            return value.tolist()
        return f"<array shape={list(value.shape)} dtype={value.dtype}>"
    if isinstance(value, plain.Encoded):
        return f"<{value.codec}: {len(value.data)} bytes>"
    if isinstance(value, dict):
        return {str(k): _summarize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_summarize(v) for v in value]
    if isinstance(value, msgspec.Struct):
        return _summarize(msgspec.structs.asdict(value))
    return value
