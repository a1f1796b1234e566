"""Plain data as msgpack: dicts, lists, scalars, dataclasses, NamedTuples, enums, datetimes,
Paths, msgspec Structs — and, nested anywhere inside, arrays, tensors and every registered
codec's values as msgpack extension types.

Canonical form: msgspec's msgpack with ``order="deterministic"`` (dict keys and sets sorted).
Extension payloads: code 1 a numpy array, 2 a torch tensor (each ``u32 header length``,
msgpack ``[dtype, shape]``, raw C-order bytes); code 3 a registered codec's value
(``u16 name length``, the codec name, that codec's bytes).

Types come back from the *reader's* annotation (msgspec conversion): with ``Any`` a dataclass
is a dict and a NamedTuple a list. No class named by the bytes is ever imported here.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from pathlib import PurePath
from typing import Any

import msgspec

from mlbuild.rules.codecs.arrays import is_tensor
from mlbuild.rules.codecs.registry import EncodingError, codec_for, codec_named

EXT_NDARRAY = 1
EXT_TENSOR = 2
EXT_CODEC = 3


class Encoded(msgspec.Struct, frozen=True):
    """A registered codec's value left encoded (inspection reads it without its library)."""

    codec: str
    data: bytes


def _array_ext(code: int, arr: Any) -> msgspec.msgpack.Ext:
    import numpy as np

    arr = np.asarray(arr, order="C")
    if arr.dtype.hasobject:
        raise EncodingError(
            "ndarray of object dtype cannot be encoded; give it a numeric or fixed-width string dtype "
            "(.astype(float), .astype(str))"
        )
    header = msgspec.msgpack.encode([arr.dtype.str, list(arr.shape)])
    return msgspec.msgpack.Ext(code, len(header).to_bytes(4, "little") + header + arr.tobytes())


def codec_ext(name: str, payload: bytes) -> msgspec.msgpack.Ext:
    raw = name.encode()
    return msgspec.msgpack.Ext(EXT_CODEC, len(raw).to_bytes(2, "little") + raw + payload)


def _enc_hook(value: Any) -> Any:
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(value, np.ndarray):
            return _array_ext(EXT_NDARRAY, value)
        if isinstance(value, np.generic):
            return value.item()
    if is_tensor(value):
        return _array_ext(EXT_TENSOR, value.detach().cpu().numpy())
    if isinstance(value, PurePath):
        return value.as_posix()
    codec = codec_for(value)
    if codec is not None:
        return codec_ext(codec.name, codec.encode(value))
    raise EncodingError(f"values of type {type_name(value)} cannot be encoded")


_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook, order="deterministic")


def encode(value: Any) -> bytes:
    try:
        return _encoder.encode(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise EncodingError(str(exc)) from None


def _split_codec(data: memoryview) -> tuple[str, bytes]:
    n = int.from_bytes(data[:2], "little")
    return bytes(data[2 : 2 + n]).decode(), bytes(data[2 + n :])


def ext_numpy(code: int, data: memoryview) -> Any:
    """An extension value for inspection: arrays as read-only numpy arrays, codec values left
    as ``Encoded``."""
    import numpy as np

    if code == EXT_CODEC:
        name, payload = _split_codec(data)
        return Encoded(name, payload)
    if code not in (EXT_NDARRAY, EXT_TENSOR):
        return f"<unknown msgpack extension {code}>"
    n = int.from_bytes(data[:4], "little")
    dtype, shape = msgspec.msgpack.decode(data[4 : 4 + n])
    return np.frombuffer(data[4 + n :], dtype=np.dtype(dtype)).reshape(shape)


def _ext_hook(code: int, data: memoryview) -> Any:
    if code == EXT_CODEC:
        name, payload = _split_codec(data)
        return codec_named(name).decode(payload)
    arr = ext_numpy(code, data)
    if code == EXT_TENSOR:
        import torch

        return torch.from_numpy(arr.copy())
    return arr.copy()


def _dec_hook(typ: type, obj: Any) -> Any:
    if isinstance(typ, type) and issubclass(typ, PurePath) and isinstance(obj, str):
        return typ(obj)
    if isinstance(obj, typ):
        return obj
    raise EncodingError(f"expected {typ.__qualname__}, got {type(obj).__qualname__}")


def decode(data: bytes, annotation: Any = Any) -> Any:
    if annotation is Any or annotation is None:
        return msgspec.msgpack.decode(data, ext_hook=_ext_hook)
    return msgspec.msgpack.decode(data, type=annotation, ext_hook=_ext_hook, dec_hook=_dec_hook)


def decode_inspect(data: bytes) -> Any:
    return msgspec.msgpack.decode(data, ext_hook=ext_numpy)


# -- saying what failed, and where ----------------------------------------------------------


def type_name(value: Any) -> str:
    t = type(value)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def hint(value: Any) -> str:
    """What to return instead of ``value``."""
    if isinstance(value, (types.GeneratorType, types.AsyncGeneratorType)) or (
        hasattr(value, "__next__") and hasattr(value, "__iter__")
    ):
        return "return a list: an iterator is consumed once and has no stored form"
    if callable(value) and not isinstance(value, type) or isinstance(value, (types.ModuleType, type)):
        return "functions, classes and modules are code, not data: return what they compute"
    if hasattr(value, "read") and hasattr(value, "close"):
        return "return the data, or write the file into the step's `out` directory (an `out: Path` parameter)"
    name = type_name(value)
    return (
        "return plain data (dict, list, str, numbers), arrays, DataFrames, sparse matrices, models, "
        f"figures, or a dataclass/msgspec.Struct of those; or register a codec for {name} with "
        "mlbuild.register_codec(...)"
    )


def _children(value: Any) -> list[tuple[str, Any]] | None:
    if isinstance(value, dict):
        return [(f"[{json.dumps(k) if isinstance(k, str) else repr(k)}]", v) for k, v in value.items()]
    if isinstance(value, msgspec.Struct):
        return [(f".{f}", getattr(value, f)) for f in value.__struct_fields__]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(f".{f.name}", getattr(value, f.name)) for f in dataclasses.fields(value)]
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return [(f".{f}", v) for f, v in zip(value._fields, value, strict=True)]
    if isinstance(value, (list, tuple)):
        return [(f"[{i}]", v) for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return [("{…}", v) for v in value]
    return None


def locate(value: Any, path: str = "return value") -> str | None:
    """``path: what failed; what to do`` for the first part of ``value`` that cannot be
    encoded (None if all of it can). Run only after encoding failed: it encodes piecewise."""
    children = _children(value)
    if children is not None:
        if isinstance(value, dict):
            for k in value:
                if not isinstance(k, (str, int, float, bool)) and k is not None:
                    return f"{path}: a dict key of type {type_name(k)} cannot be encoded; use str or int keys"
        for sub, child in children:
            found = locate(child, path + sub)
            if found is not None:
                return found
    try:
        _encoder.encode(value)
    except EncodingError as exc:
        text = str(exc)
        if text.startswith("values of type"):
            return f"{path}: {type_name(value)} cannot be encoded; {hint(value)}"
        return f"{path}: {text}"
    except (TypeError, ValueError, OverflowError) as exc:
        return f"{path}: {exc}"
    return None
