"""The drawable pieces of a rendered artifact (``render`` and ``render_codecs`` make them; the
page draws each by its ``kind``)."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["ArraySummary", "Block", "FileEntry", "Files", "Heatmap", "Histogram", "Image", "Note", "Scalars",
           "Section", "Table", "Text"]


class Block(msgspec.Struct, tag_field="kind"):
    """One drawable piece of an artifact; ``kind`` says how the page draws it."""

    name: str


class Scalars(Block, tag="scalars"):
    """Named numbers, strings, booleans (and short lists of numbers) as a two-column table."""

    rows: list[tuple[str, Any]]


class Histogram(msgspec.Struct):
    edges: list[float]
    counts: list[int]


class ArraySummary(Block, tag="array"):
    """An array or tensor: shape, dtype, statistics, a histogram, and sample images if any."""

    shape: list[int]
    dtype: str
    size: int
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    histogram: Histogram | None = None
    preview: list[Any] | None = None  # the first values, flattened
    images: list[str] = []  # data: URLs of the array (or its first items) drawn as images
    series: list[float] | None = None  # a 1-D numeric array (a per-epoch curve), for a line chart


class Image(Block, tag="image"):
    src: str  # a data: URL or an /api/blobs URL
    width: int | None = None
    height: int | None = None


class Heatmap(Block, tag="heatmap"):
    """A square numeric matrix (a confusion matrix, a similarity matrix…), drawn as colours;
    ``counts`` when its values are integers (then rows are read as true classes, columns as
    predicted ones)."""

    matrix: list[list[float]]
    max: float
    min: float = 0.0
    counts: bool = True


class Text(Block, tag="text"):
    text: str
    language: str = "text"  # text | json
    truncated: bool = False


class FileEntry(msgspec.Struct):
    path: str
    size: int
    digest: str
    url: str


class Files(Block, tag="files"):
    """A directory output: every file with its size and download link; some rendered below."""

    files: list[FileEntry]
    total: int
    rendered: list[Block] = []


class Section(Block, tag="section"):
    """A nested mapping or list, rendered block by block."""

    blocks: list[Block]


class Table(Block, tag="table"):
    """A DataFrame or Series: its first rows (the page shows them a page at a time), dtypes,
    and per-column statistics (see ``render_codecs``)."""

    kind_of: str  # pandas.DataFrame, polars.Series, ...
    columns: list[str]
    dtypes: list[str]
    index_name: str | None
    index: list[str]
    rows: list[list[Any]]
    total_rows: int
    stats: list[Any]  # render_codecs.ColumnStats


class Note(Block, tag="note"):
    """Why something is not rendered (too large, pickled, corrupt)."""

    text: str
