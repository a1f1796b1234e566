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


def _ext_numpy(code: int, data: memoryview) -> Any:
    """The array inside one of our extension types, as a (read-only) numpy array."""
    import numpy as np

    if code not in (_EXT_NDARRAY, _EXT_TENSOR):
        return f"<unknown msgpack extension {code}>"
    n = int.from_bytes(data[:4], "little")
    dtype, shape = msgspec.msgpack.decode(data[4 : 4 + n])
    return np.frombuffer(data[4 + n :], dtype=np.dtype(dtype)).reshape(shape)


def _ext_hook(code: int, data: memoryview) -> Any:
    arr = _ext_numpy(code, data)
    if code == _EXT_TENSOR:
        import torch

        return torch.from_numpy(arr.copy())
    return arr.copy()


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


_ST_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}


def read_safetensors(data: bytes) -> dict[str, Any]:
    """The tensors of a safetensors file as numpy arrays, without torch (bf16 widened to
    float32 exactly; other dtypes numpy lacks come back as raw bytes)."""
    import json
    import struct

    import numpy as np

    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = memoryview(data)[8 + n :]
    out: dict[str, Any] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = body[start:end]
        dtype, shape = info["dtype"], info["shape"]
        if dtype == "BF16":
            # bfloat16 is the top half of a float32: widening is exact.
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif dtype in _ST_DTYPES:
            arr = np.frombuffer(raw, dtype=_ST_DTYPES[dtype])
        else:
            arr = np.frombuffer(raw, dtype=np.uint8)
            shape = [len(raw)]
        out[name] = arr.reshape(shape)
    return out


def decode_numpy(codec: str, data: bytes) -> Any:
    """Decode an artifact for inspection: arrays and tensors as numpy arrays, never importing
    torch, never unpickling (a pickled artifact raises EncodingError)."""
    if codec == "npy":
        import numpy as np

        return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    if codec == "safetensors":
        tensors = read_safetensors(data)
        return tensors["__tensor__"] if set(tensors) == {"__tensor__"} else tensors
    if codec == "msgpack":
        return msgspec.msgpack.decode(data, ext_hook=_ext_numpy)
    raise EncodingError(f"{codec} artifacts are not decoded for inspection")


def to_display(codec: str, data: bytes) -> Any:
    """A JSON-friendly rendering of a small value, for ``mlbuild show``."""
    return _summarize(decode_numpy(codec, data))


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
