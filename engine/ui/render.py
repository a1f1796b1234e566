"""Artifacts rendered for people: metrics as tables, arrays as summaries, images as images;
DataFrames, models, sparse matrices and figures by ``render_codecs``.

``render_artifact`` turns one stored output (an ``ArtifactRef``) into a list of ``Block``s that
the page draws. Nothing is ever unpickled, tensors are read as numpy arrays (torch is never
imported here), and a value larger than ``MAX_DECODE`` is listed with its download link only.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from mlbuild.cache.cas import CAS, CorruptBlob, MissingBlob
from mlbuild.cache.records import ArtifactRef
from mlbuild.cache.trees import read_tree
from mlbuild.engine.ui.blocks import (
    ArraySummary,
    Block,
    FileEntry,
    Files,
    Heatmap,
    Histogram,
    Image,
    Note,
    Scalars,
    Section,
    Text,
)
from mlbuild.rules.codecs import EncodingError, decode_numpy
from mlbuild.rules.codecs.plain import Encoded

__all__ = ["Block", "render_artifact", "render_value", "png_bytes"]

MAX_DECODE = 64 * 1024 * 1024  # larger values get a download link, not a rendering
MAX_TEXT = 256 * 1024  # characters of text shown inline
MAX_INLINE_FILES = 24  # files of a tree rendered inline (the rest are only listed)
MAX_SCALAR_LIST = 32  # short lists of numbers are shown in a table row, longer ones as arrays
HIST_BINS = 20
MAX_SERIES = 2000  # points of a 1-D array's line chart
IMAGE_EXTS = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
              ".webp": "image/webp"}
TEXT_EXTS = {".txt", ".md", ".log", ".csv", ".tsv", ".yaml", ".yml", ".toml", ".py", ".cfg", ".ini"}


def blob_url(digest: str, name: str | None = None) -> str:
    from urllib.parse import quote

    return f"/api/blobs/{digest}" + (f"?name={quote(name, safe='')}" if name else "")


# -- decoding ----------------------------------------------------------------------------


def decode_for_display(codec: str, data: bytes) -> Any:
    """The value of an encoded artifact, with arrays and tensors as numpy arrays."""
    try:
        return decode_numpy(codec, data)
    except EncodingError as exc:
        raise ValueError(str(exc)) from None


# -- rendering ---------------------------------------------------------------------------


def render_artifact(cas: CAS, ref: ArtifactRef) -> list[Block]:
    """The blocks for one output of an action."""
    if ref.codec == "pickle":
        return [Note(ref.name, "a pickled value: never unpickled here; download it to inspect it")]
    if ref.codec == "tree":
        try:
            return [_render_tree(cas, ref)]
        except (CorruptBlob, MissingBlob) as exc:
            return [Note(ref.name, f"the tree blob is not readable here: {_blob_problem(exc)}")]
    if ref.size > MAX_DECODE:
        return [Note(ref.name, f"{ref.size} bytes: too large to render; download it")]
    try:
        data = cas.get_bytes(ref.digest)
    except (CorruptBlob, MissingBlob) as exc:
        return [Note(ref.name, _blob_problem(exc))]
    try:
        value = decode_for_display(ref.codec, data)
    except Exception as exc:  # a value we cannot decode is still listed, with the reason
        return [Note(ref.name, f"cannot decode ({ref.codec}): {exc}")]
    return render_value(ref.name, value)


def _blob_problem(exc: Exception) -> str:
    if isinstance(exc, MissingBlob):
        return "its blob is not in the local cache (build without the bytes, or collected)"
    return "its blob is corrupt and was removed from the cache"


def render_value(name: str, value: Any) -> list[Block]:
    """Blocks for a decoded value: scalars gathered in one table, everything else on its own."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        return [_render_array(name, value)]
    if isinstance(value, Encoded):  # a DataFrame, model, sparse matrix, figure, ...
        from mlbuild.engine.ui.render_codecs import render_encoded

        # Arrays inside a codec's value (a model's tensors) are drawn as everywhere else.
        return render_encoded(name, value, _render_array)
    if isinstance(value, dict):
        return [_render_mapping(name, value)]
    if isinstance(value, (list, tuple)):
        if _is_number_list(value):
            if len(value) <= MAX_SCALAR_LIST:
                return [Scalars(name, [(name, list(value))])]
            import numpy

            return [_render_array(name, numpy.asarray(value))]
        if all(_is_scalar(v) for v in value):
            return [Text(name, json.dumps(value, indent=2, default=str), "json")]
        return [Section(name, [b for i, v in enumerate(value) for b in render_value(f"{name}[{i}]", v)])]
    if isinstance(value, str):
        return [_render_string(name, value)]
    if isinstance(value, bytes):
        return [Note(name, f"{len(value)} bytes of binary data")]
    return [Scalars(name, [(name, _scalar(value))])]


def _render_mapping(name: str, value: dict[Any, Any]) -> Block:
    rows: list[tuple[str, Any]] = []
    blocks: list[Block] = []
    for k, v in value.items():
        key = str(k)
        if _is_scalar(v):
            rows.append((key, _scalar(v)))
        elif isinstance(v, (list, tuple)) and _is_number_list(v) and len(v) <= MAX_SCALAR_LIST:
            rows.append((key, [_scalar(x) for x in v]))
        elif _is_square_matrix(v):
            blocks.append(_render_heatmap(key, v))
        else:
            blocks.extend(render_value(key, v))
    if rows:
        blocks.insert(0, Scalars(name, rows))
    return Section(name, blocks)


def _render_string(name: str, text: str) -> Text:
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            return Text(name, json.dumps(json.loads(text), indent=2), "json")
        except ValueError:
            pass
    return Text(name, text[:MAX_TEXT], "text", len(text) > MAX_TEXT)


def _is_scalar(v: Any) -> bool:
    np = sys.modules.get("numpy")
    if np is not None and isinstance(v, np.generic):
        return True
    return v is None or isinstance(v, (bool, int, float)) or (isinstance(v, str) and len(v) <= 200)


def _scalar(v: Any) -> Any:
    np = sys.modules.get("numpy")
    if np is not None and isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v != v:
        return "NaN"
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return str(v)
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    return str(v)


def _is_number_list(v: Any) -> bool:
    return bool(v) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)


MAX_HEATMAP = 64  # sides of a square matrix drawn as a heatmap


def _is_square_matrix(v: Any) -> bool:
    """A matrix by its shape, whatever its name: square, 2..64 wide, numbers. (uint8 squares
    of 16 and more are pictures, and drawn as images.)"""
    np = sys.modules.get("numpy")
    if np is None or not isinstance(v, np.ndarray):
        return False
    if v.ndim != 2 or v.shape[0] != v.shape[1] or not 2 <= v.shape[0] <= MAX_HEATMAP:
        return False
    if v.dtype == np.uint8 and v.shape[0] >= 16:
        return False
    return v.dtype.kind in "iuf" and bool(np.isfinite(v).all())


def _render_heatmap(name: str, arr: Any) -> Heatmap:
    matrix = arr.astype(float).tolist()
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    counts = arr.dtype.kind in "iu"
    return Heatmap(name, matrix, hi, min(lo, 0.0) if counts else lo, counts)


def _render_array(name: str, arr: Any) -> Block:
    import numpy as np

    if _is_square_matrix(arr):
        return _render_heatmap(name, arr)
    summary = ArraySummary(name, list(arr.shape), str(arr.dtype), int(arr.size))
    if arr.size and arr.dtype.kind in "biuf":
        data = arr.astype(np.float64, copy=False)
        finite = data[np.isfinite(data)]
        if finite.size:
            summary.min = float(finite.min())
            summary.max = float(finite.max())
            summary.mean = float(finite.mean())
            summary.std = float(finite.std())
            counts, edges = np.histogram(finite, bins=HIST_BINS)
            summary.histogram = Histogram([float(e) for e in edges], [int(c) for c in counts])
        summary.images = [_data_url(png_bytes(img)) for img in _image_samples(arr)]
    if arr.size:
        summary.preview = [_scalar(x) for x in arr.reshape(-1)[:16].tolist()]
    if arr.ndim == 1 and 2 <= arr.size and arr.dtype.kind in "biuf":
        step = max(1, arr.size // MAX_SERIES)  # a long curve is thinned to what a chart can show
        series = arr[::step].astype(np.float64)
        if np.isfinite(series).all():
            summary.series = [float(x) for x in series]
    return summary


def _looks_like_image(shape: tuple[int, ...]) -> bool:
    """(H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4, sides 4..4096, not too elongated."""
    if len(shape) == 3:
        if shape[2] in (1, 3, 4):
            shape = shape[:2]
        elif shape[0] in (1, 3, 4):
            shape = shape[1:]
        else:
            return False
    if len(shape) != 2:
        return False
    h, w = shape
    return 4 <= h <= 4096 and 4 <= w <= 4096 and max(h, w) <= 4 * min(h, w)


def _image_samples(arr: Any, limit: int = 8) -> list[Any]:
    """The array drawn as images when its shape says it holds some: one image, or the first
    few of a batch (N, H, W), (N, C, H, W), (N, H, W, C)."""
    if arr.dtype.kind not in "uif":
        return []
    if _looks_like_image(arr.shape):
        return [arr]
    if arr.ndim in (3, 4) and arr.shape[0] >= 1 and _looks_like_image(arr.shape[1:]):
        return [arr[i] for i in range(min(limit, arr.shape[0]))]
    return []


def png_bytes(img: Any, scale_to: int = 96) -> bytes:
    """A PNG of a 2-D (grey) or 3-D (RGB/RGBA, channels first or last) array, min-max scaled
    (uint8 kept as is), enlarged by whole pixels to about ``scale_to`` pixels wide."""
    import struct
    import zlib

    import numpy as np

    a = np.asarray(img)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[2] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.dtype != np.uint8:
        f = a.astype(np.float64)
        lo, hi = float(np.nanmin(f)), float(np.nanmax(f))
        f = (f - lo) / (hi - lo) if hi > lo else np.zeros_like(f)
        a = (np.nan_to_num(f) * 255).round().astype(np.uint8)
    factor = max(1, scale_to // max(a.shape[1], 1))
    a = np.repeat(np.repeat(a, factor, axis=0), factor, axis=1)
    h, w = a.shape[:2]
    color = {2: 0, 3: 2}[a.ndim] if a.ndim == 2 or a.shape[2] == 3 else 6
    rows = a.reshape(h, -1)
    raw = b"".join(b"\x00" + rows[y].tobytes() for y in range(h))

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    header = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _data_url(png: bytes) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(png).decode()


def _render_tree(cas: CAS, ref: ArtifactRef) -> Files:
    entries = read_tree(cas, ref.digest)
    files = [FileEntry(e.path, e.size, e.digest, blob_url(e.digest, e.path.rsplit("/", 1)[-1])) for e in entries]
    rendered: list[Block] = []
    for entry in entries[:MAX_INLINE_FILES]:
        rendered.extend(_render_file(cas, entry.path, entry.digest, entry.size))
    return Files(ref.name, files, sum(e.size for e in entries), rendered)


def _render_file(cas: CAS, path: str, digest: str, size: int) -> list[Block]:
    ext = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if ext in IMAGE_EXTS:
        return [Image(path, blob_url(digest) + f"?type={IMAGE_EXTS[ext]}")]
    if ext not in TEXT_EXTS | {".json", ".npy"} or size > MAX_DECODE:
        return []
    try:
        data = cas.get_bytes(digest)
    except (CorruptBlob, MissingBlob) as exc:
        return [Note(path, _blob_problem(exc))]
    if ext == ".npy":
        try:
            return render_value(path, decode_for_display("npy", data))
        except ValueError as exc:
            return [Note(path, f"not a readable .npy file: {exc}")]
    text = data.decode(errors="replace")
    if ext == ".json":
        return [_render_string(path, text)]
    return [Text(path, text[:MAX_TEXT], "text", len(text) > MAX_TEXT)]
