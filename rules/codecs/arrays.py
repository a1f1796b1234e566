"""numpy arrays as ``.npy`` and torch tensors (or ``{name: tensor}``) as safetensors, plus a
torch-free safetensors reader for inspection."""

from __future__ import annotations

import io
import json
import struct
import sys
from typing import Any

from mlbuild.rules.codecs.registry import EncodingError

_ST_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}


def is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def is_tensor_dict(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) for k in value)
        and all(is_tensor(v) for v in value.values())
    )


def encode_npy(value: Any) -> bytes:
    buf = io.BytesIO()
    write_npy(value, buf)
    return buf.getvalue()


def write_npy(value: Any, out: Any) -> None:
    """``encode_npy``'s bytes written to the file object ``out``: into a real file, a C-ordered
    array is written straight from its memory (no copy), so a large value costs no more memory
    to store than it took to compute (the runner stores large arrays this way)."""
    import numpy as np

    if value.dtype.hasobject:
        raise EncodingError(
            "ndarray of object dtype cannot be encoded; give it a numeric or fixed-width string dtype "
            "(.astype(float), .astype(str))"
        )
    np.lib.format.write_array(out, np.asarray(value, order="C"), allow_pickle=False)


def decode_npy(data: bytes) -> Any:
    import numpy as np

    return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)


def encode_safetensors(value: Any) -> bytes:
    from safetensors.torch import save

    tensors = value if isinstance(value, dict) else {"__tensor__": value}
    return save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def decode_safetensors(data: bytes) -> Any:
    from safetensors.torch import load

    tensors = load(data)
    return tensors["__tensor__"] if set(tensors) == {"__tensor__"} else tensors


def read_safetensors(data: bytes) -> dict[str, Any]:
    """The tensors of a safetensors file as numpy arrays, without torch (bf16 widened to
    float32 exactly; other dtypes numpy lacks come back as raw bytes)."""
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
