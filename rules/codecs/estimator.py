"""scikit-learn estimators and pipelines through skops (``.skops``: a zip of a JSON schema and
``.npy`` arrays), loaded with a trusted-types list, never with pickle.

skops' own output is not deterministic: members are named after ``id()`` of the objects,
memo ids are ``id()`` values, and the zip carries the current time. ``canonical`` rewrites it:
ids and member names numbered in order of first appearance in the schema, members sorted,
dates fixed. skops reads the result as it reads its own. Immutable JSON values (strings,
numbers, None) are numbered by content, not identity: whether two equal ``0.0`` are one
Python object or two is an accident of the interpreter (a model read back shares fewer), and
must not change the bytes. Structured arrays (a tree's ``nodes``) are rewritten with their
padding bytes zeroed: numpy leaves padding uninitialized, so it holds whatever memory held.

Trust: skops refuses to load a type not on its safe list unless the caller trusts it. mlbuild
trusts scikit-learn's own classes (``sklearn.*``, e.g. ``sklearn.tree._tree.Tree`` inside a
random forest), plus what a team adds, by fully qualified name:

- in code that the consuming rule imports: ``mlbuild.trust_types("xgboost.sklearn.XGBClassifier")``;
- or for every process: ``MLBUILD_TRUSTED_TYPES="mypkg.models.MyEstimator,xgboost.core.Booster"``.

Anything else fails to load with the list of untrusted types in the error.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import Any

from mlbuild.rules.codecs.registry import EncodingError
from mlbuild.rules.codecs.sparse import FIXED_DATE

_trusted: set[str] = set()
TRUSTED_PREFIXES = ("sklearn.",)


def trust_types(*names: str) -> None:
    """Let skops load these fully qualified type names (``"pkg.module.Class"``) from artifacts."""
    for n in names:
        if not isinstance(n, str) or "." not in n:
            raise ValueError(f"trust_types takes fully qualified names like 'pkg.module.Class', got {n!r}")
        _trusted.add(n)


def trusted_types() -> set[str]:
    env = {t.strip() for t in os.environ.get("MLBUILD_TRUSTED_TYPES", "").split(",") if t.strip()}
    return _trusted | env


def canonical(data: bytes) -> bytes:
    """skops bytes with ids and member names renumbered, sorted members and fixed dates."""
    src = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(src.read("schema.json"))
    members = set(src.namelist()) - {"schema.json"}
    ids: dict[Any, int] = {}
    names: dict[str, str] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for k, v in node.items():
                if k == "__id__" and isinstance(v, int):
                    ident: Any = v
                    if node.get("__loader__") == "JsonNode":
                        ident = ("json", node.get("__class__"), node.get("content"))
                    out[k] = ids.setdefault(ident, len(ids))
                elif k == "file" and isinstance(v, str) and v in members:
                    if v not in names:
                        names[v] = f"{len(names)}{os.path.splitext(v)[1]}"
                    out[k] = names[v]
                else:
                    out[k] = walk(v)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    schema = walk(schema)
    unreferenced = members - set(names)
    if unreferenced:
        raise EncodingError(f"skops wrote members the schema does not name: {sorted(unreferenced)[:3]}")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as out:
        entries = [("schema.json", json.dumps(schema, indent=2, sort_keys=False).encode())]
        entries += sorted((new, _zero_padding(src.read(old)) if new.endswith(".npy") else src.read(old))
                          for old, new in names.items())
        for name, body in entries:
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.external_attr = 0o644 << 16
            out.writestr(info, body)
    return buf.getvalue()


def _zero_padding(npy: bytes) -> bytes:
    """The ``.npy`` bytes with a structured dtype's padding zeroed (others returned as they are)."""
    import numpy as np

    buf = io.BytesIO(npy)
    version = np.lib.format.read_magic(buf)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    dtype = read_header(buf)[2]  # the header only: shape, order, dtype
    fields = dtype.fields
    if fields is None or dtype.hasobject or dtype.itemsize == sum(int(f[0].itemsize) for f in fields.values()):
        return npy
    arr = np.lib.format.read_array(io.BytesIO(npy), allow_pickle=False)
    clean = np.zeros(arr.shape, dtype=arr.dtype)
    for name in fields:
        clean[name] = arr[name]
    out = io.BytesIO()
    np.lib.format.write_array(out, clean, version=version, allow_pickle=False)
    return out.getvalue()


def encode(value: Any) -> bytes:
    try:
        import skops.io as sio
    except ImportError:
        raise EncodingError("a scikit-learn model needs skops to be stored: pip install 'mlbuild[sklearn]'") from None
    try:
        data = sio.dumps(value)
    except (TypeError, ValueError, NotImplementedError) as exc:
        raise EncodingError(f"skops cannot store {type(value).__name__}: {exc}") from None
    return canonical(data)


def decode(data: bytes) -> Any:
    import skops.io as sio

    found = sio.get_untrusted_types(data=data)
    extra = trusted_types()
    untrusted = [t for t in found if not t.startswith(TRUSTED_PREFIXES) and t not in extra]
    if untrusted:
        raise EncodingError(
            f"the model holds types mlbuild does not trust: {', '.join(untrusted)}; if they are yours "
            "or you trust their package, call mlbuild.trust_types(...) in the consuming rule's module "
            "or set MLBUILD_TRUSTED_TYPES"
        )
    return sio.loads(data, trusted=list(found))


def read_schema(data: bytes) -> dict[str, Any]:
    """The skops schema (class names, parameters, array member names), read without skops."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        schema: dict[str, Any] = json.loads(zf.read("schema.json"))
        return schema


def read_arrays(data: bytes) -> dict[str, Any]:
    """Every ``.npy`` member of a skops file by its (canonical) member name, never unpickling."""
    import numpy as np

    out: dict[str, Any] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in zf.namelist():
            if name.endswith(".npy"):
                try:
                    out[name] = np.lib.format.read_array(io.BytesIO(zf.read(name)), allow_pickle=False)
                except ValueError:
                    continue  # an object array skops stored its own way
    return out


def parameters(data: bytes) -> dict[str, Any]:
    """Flattened ``path -> value`` of an estimator's schema: JSON scalars as values, arrays as
    ``<array member>`` references (``steps[1].n_estimators``, ``coef_``)."""
    out: dict[str, Any] = {}

    def walk(path: str, node: Any) -> None:
        if not isinstance(node, dict):
            return
        loader = node.get("__loader__")
        content = node.get("content")
        if loader == "JsonNode" and isinstance(content, str):
            try:
                out[path] = json.loads(content)
            except ValueError:
                out[path] = content
            return
        if "file" in node:
            out[path] = {"array": node["file"]}
            return
        if node.get("__module__") not in (None, "builtins"):
            out[f"{path}.__class__" if path else "__class__"] = f"{node.get('__module__')}.{node.get('__class__')}"
        if loader == "DictNode" and isinstance(content, dict):
            for k, v in content.items():
                walk(f"{path}.{k}" if path else str(k), v)
        elif isinstance(content, list):
            for i, v in enumerate(content):
                walk(f"{path}[{i}]", v)
        elif isinstance(content, dict):
            walk(path, content)  # an object's state: a node of its own

    walk("", read_schema(data))
    return out
