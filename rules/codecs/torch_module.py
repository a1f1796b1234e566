"""torch ``nn.Module``s as their ``state_dict`` in safetensors plus how to rebuild them, and
``TensorDataset``s as their tensors.

A module is stored as safetensors whose ``__metadata__`` holds the class's import path and the
keyword arguments it is built with (JSON). Decoding imports that class from the project's code
(or the installed package), builds it with those arguments and loads the weights (strictly), so
what comes back is the class as the code defines it *now*: a changed class shows up in the
consuming step's code digest, and a state_dict that no longer fits fails loudly. The class
MUST be an ``nn.Module`` subclass; nothing else named by the bytes is imported or called.

The keyword arguments come from an ``init_kwargs`` attribute (plain data) if the module has
one; otherwise from the attributes named like ``__init__``'s parameters, scikit-learn style
(``self.hidden = hidden``). A module built with arguments neither way records is refused at
encode time, with that hint.
"""

from __future__ import annotations

import importlib
import inspect
import json
from typing import Any

from mlbuild.rules.codecs.registry import EncodingError

_PLAIN = (str, int, float, bool, type(None))


def _plain(v: Any) -> bool:
    if isinstance(v, _PLAIN):
        return True
    if isinstance(v, (list, tuple)):
        return all(_plain(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain(x) for k, x in v.items())
    return False


def _init_kwargs(module: Any) -> dict[str, Any]:
    cls = type(module)
    explicit = getattr(module, "init_kwargs", None)
    if explicit is not None:
        kwargs = dict(explicit)
    else:
        kwargs = {}
        sig = inspect.signature(cls.__init__)
        for name, p in list(sig.parameters.items())[1:]:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if hasattr(module, name) and _plain(getattr(module, name)):
                kwargs[name] = getattr(module, name)
            elif p.default is p.empty:
                raise EncodingError(
                    f"{cls.__qualname__} needs constructor argument {name!r}, which it does not keep: "
                    f"store it as self.{name} (plain data) or give the module an init_kwargs dict, "
                    "or return module.state_dict() instead"
                )
    if not _plain(kwargs):
        raise EncodingError(f"{cls.__qualname__}.init_kwargs must be plain data (str, numbers, lists, dicts)")
    return kwargs


def save_sorted(tensors: dict[str, Any], meta: dict[str, str]) -> bytes:
    """safetensors bytes with ``__metadata__`` in sorted key order.

    The safetensors writer keeps metadata in a hash map, so its order (and the bytes) change
    from call to call; the header is re-serialized here (same JSON form, space-padded to
    8 bytes as the format requires) with the metadata sorted."""
    import struct

    from safetensors.torch import save

    data = save(tensors, metadata=meta)
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data[8 + n :]


def class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def encode(value: Any) -> bytes:
    cls = type(value)
    if "<locals>" in cls.__qualname__ or cls.__module__ == "__main__":
        raise EncodingError(f"{cls.__qualname__} is not importable by name: define the module class at the top level of a project module")
    meta = {
        "mlbuild.class": class_path(cls),
        "mlbuild.init": json.dumps(_init_kwargs(value), sort_keys=True),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in value.state_dict().items()}
    # Tied weights share storage; safetensors refuses shared tensors, so store copies.
    seen: set[int] = set()
    for k, v in state.items():
        if v.data_ptr() in seen and v.numel():
            state[k] = v.clone()
        seen.add(v.data_ptr())
    return save_sorted(state, meta)


def _resolve(path: str) -> type:
    import torch

    module_name, _, qual = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qual.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, torch.nn.Module)):
        raise EncodingError(f"{path} is not a torch.nn.Module subclass; refusing to build it")
    return obj


def metadata(data: bytes) -> dict[str, str]:
    """The safetensors header metadata, read without torch."""
    import struct

    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    return dict(header.get("__metadata__") or {})


def decode(data: bytes) -> Any:
    from safetensors.torch import load

    meta = metadata(data)
    cls = _resolve(meta["mlbuild.class"])
    module = cls(**json.loads(meta.get("mlbuild.init", "{}")))
    module.load_state_dict(load(data), strict=True)
    return module


def encode_dataset(value: Any) -> bytes:
    tensors = {str(i): t.detach().cpu().contiguous() for i, t in enumerate(value.tensors)}
    return save_sorted(tensors, {"mlbuild.count": str(len(tensors)), "mlbuild.kind": "TensorDataset"})


def decode_dataset(data: bytes) -> Any:
    from safetensors.torch import load
    from torch.utils.data import TensorDataset

    tensors = load(data)
    return TensorDataset(*(tensors[str(i)] for i in range(len(tensors))))
