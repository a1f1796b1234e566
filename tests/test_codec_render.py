"""The UI's blocks for the new codecs (server side): a DataFrame as a table with dtypes and
statistics, a model as its parameters and fitted attributes, a sparse matrix as its shape and
values, a torch module as its class and weights, figures and images as images — read without
loading (or trusting) anything, and without importing pandas, scikit-learn, scipy or torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec

from mlbuild.engine.ui.render import render_value
from mlbuild.rules.codecs import decode_numpy, encode

SUPPORT = str(Path(__file__).parent / "support")


def _blocks(value: Any) -> list[dict[str, Any]]:
    codec, data = encode(value)
    return json.loads(msgspec.json.encode(render_value("value", decode_numpy(codec, data))))


def _find(blocks: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    for b in blocks:
        if b["kind"] == kind and (name is None or b["name"] == name):
            return b
        found = _find(b.get("blocks", []), kind, name) if b["kind"] == "section" else None
        if found:
            return found
    return {}


def test_a_dataframe_is_a_table_with_dtypes_and_stats() -> None:
    sys.path.insert(0, SUPPORT)
    import codec_values as cv

    [table] = _blocks(cv.make_frame())
    assert table["kind"] == "table" and table["kind_of"] == "pandas.DataFrame"
    assert table["columns"] == ["x", "label", "n"]
    assert table["dtypes"][0] == "double" and "string" in table["dtypes"][1] and table["dtypes"][2] == "int32"
    assert len(table["rows"]) == 20 and table["rows"][1][1] == "b"
    assert table["index_name"] == "id" and table["index"][:2] == ["row0", "row1"] and table["total_rows"] == 20
    x = next(s for s in table["stats"] if s["column"] == "x")
    assert x["nulls"] == 0 and x["min"] <= x["mean"] <= x["max"] and x["std"] > 0


def test_models_sparse_modules_and_figures_render_from_their_bytes() -> None:
    script = (
        "import json, sys, msgspec\n"
        f"sys.path.insert(0, {SUPPORT!r})\n"
        "import codec_values as cv\n"
        "from mlbuild.rules.codecs import encode, decode_numpy\n"
        "values = {'model': cv.make_estimator(), 'features': cv.make_sparse(), 'net': cv.make_module(),\n"
        "          'fig': cv.make_matplotlib(), 'img': cv.make_image(), 'pl': cv.make_plotly()}\n"
        "codec, data = encode(values)\n"
        "for m in [m for m in list(sys.modules) if m.split('.')[0] in ('pandas', 'sklearn', 'scipy', 'torch', 'skops', 'matplotlib', 'PIL', 'plotly')]:\n"
        "    del sys.modules[m]\n"
        "from mlbuild.engine.ui.render import render_value\n"
        "blocks = render_value('value', decode_numpy(codec, data))\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'sklearn', 'scipy', 'torch', 'skops', 'PIL', 'plotly', 'matplotlib'})\n"
        "print(json.dumps({'blocks': msgspec.to_builtins(blocks), 'loaded': loaded}))\n"
    )
    out = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    assert out["loaded"] == []
    blocks = out["blocks"]
    model = dict(_find(blocks, "scalars", "model")["rows"])
    assert model["class"] == "sklearn.pipeline.Pipeline"
    params = dict(_find(blocks, "scalars", "parameters")["rows"])
    assert params["steps[1][1].n_estimators"] == 4 and params["steps[1][1].max_depth"] == 3
    fitted = dict(_find(blocks, "scalars", "fitted attributes")["rows"])
    assert fitted["steps[1][1].classes_"].startswith("array [2]")
    sparse = dict(_find(blocks, "scalars", "features")["rows"])
    assert sparse["format"] == "csr" and sparse["shape"] == "30 × 40" and sparse["stored entries"] == 120
    net = dict(_find(blocks, "scalars", "net")["rows"])
    assert net["class"] == "codec_values:MLP" and json.loads(net["init"]) == {"depth": 3, "width": 5}
    assert _find(blocks, "array", "layers.0.bias")["shape"] == [5]
    for name in ("fig", "img"):
        assert _find(blocks, "image", name)["src"].startswith("data:image/png;base64,")
    assert dict(_find(blocks, "scalars", "plotly figure")["rows"])["traces"] == 1
    assert _find(blocks, "image", "pl")["src"].startswith("data:image/svg+xml;base64,")
