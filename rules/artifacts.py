"""Artifact encodings: canonical, non-executable bytes for the values rules return.

numpy arrays → ``.npy``; torch tensors and dicts of tensors → safetensors; everything else
(plain data, msgspec Structs, numpy arrays nested in them) → msgpack with a numpy extension
type. The same value always gives the same bytes. Pickle only where a rule opted in.
"""

from __future__ import annotations

import io
import sys
from typing import Any

import msgspec

_EXT_NDARRAY = 1
_EXT_TENSOR = 2


class EncodingError(TypeError):
    """A value has no canonical encoding."""


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _array_ext(code: int, arr: Any) -> msgspec.msgpack.Ext:
    import numpy as np

    arr = np.asarray(arr, order="C")
    if arr.dtype.hasobject:
        raise EncodingError("numpy arrays of Python objects have no canonical encoding")
    header = msgspec.msgpack.encode([arr.dtype.str, list(arr.shape)])
    return msgspec.msgpack.Ext(code, len(header).to_bytes(4, "little") + header + arr.tobytes())


def _enc_hook(value: Any) -> Any:
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(value, np.ndarray):
            return _array_ext(_EXT_NDARRAY, value)
        if isinstance(value, np.generic):
            return value.item()
    if _is_tensor(value):
        return _array_ext(_EXT_TENSOR, value.detach().cpu().numpy())
    raise EncodingError(f"values of type {type(value).__module__}.{type(value).__qualname__} cannot be encoded")


def _ext_hook(code: int, data: memoryview) -> Any:
    import numpy as np

    n = int.from_bytes(data[:4], "little")
    dtype, shape = msgspec.msgpack.decode(data[4 : 4 + n])
    arr = np.frombuffer(data[4 + n :], dtype=np.dtype(dtype)).reshape(shape).copy()
    if code == _EXT_TENSOR:
        import torch

        return torch.from_numpy(arr)
    return arr


def _dec_hook(typ: type, obj: Any) -> Any:
    if isinstance(obj, typ):
        return obj
    raise EncodingError(f"expected {typ.__qualname__}, got {type(obj).__qualname__}")


_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook, order="deterministic")


def _tensor_dict(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) for k in value)
        and all(_is_tensor(v) for v in value.values())
    )


def encode(value: Any, allow_pickle: bool = False) -> tuple[str, bytes]:
    """Encode a rule's return value; returns (codec, bytes). Raises EncodingError."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise EncodingError("numpy arrays of Python objects have no canonical encoding")
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.asarray(value, order="C"), allow_pickle=False)
        return "npy", buf.getvalue()
    if _is_tensor(value) or _tensor_dict(value):
        from safetensors.torch import save

        tensors = value if isinstance(value, dict) else {"__tensor__": value}
        return "safetensors", save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    try:
        return "msgpack", _encoder.encode(value)
    except (TypeError, EncodingError) as exc:
        if allow_pickle:
            import pickle

            return "pickle", pickle.dumps(value, protocol=5)
        raise EncodingError(str(exc)) from None


def decode(codec: str, data: bytes, annotation: Any = Any, allow_pickle: bool = False) -> Any:
    """Decode bytes written by ``encode``; msgpack values are converted to ``annotation``."""
    if codec == "npy":
        import numpy as np

        return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    if codec == "safetensors":
        from safetensors.torch import load

        tensors = load(data)
        return tensors["__tensor__"] if set(tensors) == {"__tensor__"} else tensors
    if codec == "msgpack":
        if annotation is Any or annotation is None:
            return msgspec.msgpack.decode(data, ext_hook=_ext_hook)
        return msgspec.msgpack.decode(data, type=annotation, ext_hook=_ext_hook, dec_hook=_dec_hook)
    if codec == "pickle":
        if not allow_pickle:
            raise EncodingError("refusing to unpickle an artifact: the rule did not opt into pickle")
        import pickle

        return pickle.loads(data)
    raise EncodingError(f"unknown artifact codec {codec!r}")


def to_display(codec: str, data: bytes) -> Any:
    """A JSON-friendly rendering of a small value, for ``mlbuild show``."""
    value = decode(codec, data)
    return _summarize(value)


def _summarize(value: Any) -> Any:
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        if value.size <= 16:
            return value.tolist()
        return f"<array shape={list(value.shape)} dtype={value.dtype}>"
    if _is_tensor(value):
        return f"<tensor shape={list(value.shape)} dtype={value.dtype}>"
    if isinstance(value, dict):
        return {str(k): _summarize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_summarize(v) for v in value]
    if isinstance(value, msgspec.Struct):
        return _summarize(msgspec.structs.asdict(value))
    return value
