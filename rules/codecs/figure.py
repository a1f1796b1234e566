"""Figures and images: plotly figures as their JSON, matplotlib figures as PNG + SVG, PIL
images as PNG.

A matplotlib figure cannot be rebuilt from its drawing, so it is stored drawn, and comes back
as a ``FigureImages`` (``.png``, ``.svg``, and ``save(path)``). Both drawings are made
deterministic: no software/date metadata, and SVG ids salted with a constant instead of a
random salt. The UI shows the PNG; the SVG is for reports.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import msgspec

from mlbuild.rules.codecs.registry import EncodingError


class FigureImages(msgspec.Struct, frozen=True):
    """A matplotlib figure as stored: its PNG and SVG drawings."""

    png: bytes
    svg: bytes

    def save(self, path: str | Path) -> None:
        """Write the drawing as ``path`` (``.png`` or ``.svg``)."""
        p = Path(path)
        p.write_bytes(self.svg if p.suffix.lower() == ".svg" else self.png)

    def _repr_png_(self) -> bytes:
        return self.png

    def _repr_svg_(self) -> str:
        return self.svg.decode()


# -- plotly -------------------------------------------------------------------------------


def encode_plotly(value: Any) -> bytes:
    import json

    import plotly.io as pio

    # Sorted keys: a figure read back lists its template's keys in another order.
    text = pio.to_json(value, validate=False, pretty=False, engine="json")
    return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def decode_plotly(data: bytes) -> Any:
    import plotly.io as pio

    # from_json builds the figure from the JSON's data and layout: no code is evaluated.
    return pio.from_json(data.decode(), skip_invalid=False)


# -- matplotlib -----------------------------------------------------------------------------

_FIGURE_ENCODER = msgspec.msgpack.Encoder()


def draw_matplotlib(fig: Any, dpi: float = 100) -> FigureImages:
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "mlbuild", "svg.fonttype": "path"}):
        png, svg = io.BytesIO(), io.BytesIO()
        fig.savefig(png, format="png", dpi=dpi, metadata={"Software": None})
        fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    return FigureImages(png.getvalue(), svg.getvalue())


def encode_matplotlib(value: Any) -> bytes:
    return _FIGURE_ENCODER.encode(draw_matplotlib(value))


def decode_matplotlib(data: bytes) -> FigureImages:
    return msgspec.msgpack.decode(data, type=FigureImages)


# -- PIL ------------------------------------------------------------------------------------

_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"}


def encode_pil(value: Any) -> bytes:
    if value.mode not in _PNG_MODES:
        raise EncodingError(f"a PIL image in mode {value.mode} has no PNG form; convert it (image.convert('RGB'))")
    buf = io.BytesIO()
    # No info/pnginfo: text chunks (and their dates) would make equal pixels differ.
    value.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def decode_pil(data: bytes) -> Any:
    from PIL import Image

    # Only the PNG decoder may read these bytes, whatever they claim to be.
    image = Image.open(io.BytesIO(data), formats=["PNG"])
    image.load()
    return image
