"""``mlbuild lineage`` and ``consumers``: on a copy of the ResNet example, built once for the
module in its own cache, and on a tiny workspace with a source file at the leaf."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from mlbuild.cache.store import LocalStore
from mlbuild.engine.inspect.lineage import LineageGraph, consumers, lineage_tree, resolve_key
from mlbuild.engine.inspect.lineage_render import lineage_dot

from support.cli import mlbuild
from support.workspace import write_workspace

REPO = Path(__file__).resolve().parent.parent
LABELS = ["//models:resnet", "//features:normalized", "//data:split", "//data:digits"]


class Example(msgspec.Struct):
    ws: Path
    cache: Path


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    base = tmp_path_factory.mktemp("lineage")
    ws = base / "resnet"
    shutil.copytree(REPO / "examples" / "resnet", ws, ignore=shutil.ignore_patterns("mlbuild-out", "__pycache__"))
    cache = base / "cache"
    build(ws, cache, "//models:eval")
    yield Example(ws, cache)


def build(ws: Path, cache: Path, target: str) -> None:
    mlbuild(ws, "build", "-q", target, env={"MLBUILD_CACHE_DIR": str(cache)})


def run(example: Example, *args: str) -> str:
    return mlbuild(example.ws, *args, env={"MLBUILD_CACHE_DIR": str(example.cache)}).stdout


def lineage_json(example: Example, *args: str) -> LineageGraph:
    return msgspec.json.decode(run(example, "lineage", "--json", *args), type=LineageGraph)


def test_lineage_reaches_the_source_data(example: Example) -> None:
    graph = lineage_json(example, "//models:resnet")
    assert [n.label for n in graph.nodes] == LABELS
    assert [n.depth for n in graph.nodes] == [0, 1, 2, 3]
    by_label = {n.label: n for n in graph.nodes}
    resnet = by_label["//models:resnet"]
    names = {f.name: f.file for f in resnet.functions}
    # The code digest covers the rule and the helpers it calls, in other modules too.
    assert names["models.train.train"] == "models/train.py"
    assert names["models.fitting.fit_epochs"] == "models/fitting.py"
    assert "common.seeding.seed_everything" in names
    assert resnet.config["epochs"] == 3
    assert "torch" in resnet.env.packages and resnet.env.python
    assert [(u.input, u.label) for u in resnet.upstream] == [("data", "//features:normalized")]
    assert resnet.upstream[0].digest == resnet.inputs["data"] == by_label["//features:normalized"].result_digest
    digits = by_label["//data:digits"]
    assert digits.upstream == [] and digits.sources == [] and "scikit-learn" in digits.env.packages
    assert graph.truncated == []
    text = run(example, "lineage", "//models:resnet")
    for label in LABELS:
        assert label in text
    assert "models.fitting.fit_epochs (models/fitting.py)" in text


def test_depth_cuts(example: Example) -> None:
    graph = lineage_json(example, "--depth", "1", "//models:eval")
    assert [n.label for n in graph.nodes] == ["//models:eval", "//features:normalized", "//models:resnet"]
    split = {n.label: n for n in graph.nodes}["//features:normalized"].upstream[0]
    assert graph.truncated == [split.key]
    assert "(cut by --depth)" in run(example, "lineage", "--depth", "0", "//models:eval")


def test_start_from_digest_key_and_cache_path(monkeypatch: pytest.MonkeyPatch, example: Example) -> None:
    store = LocalStore(example.cache)
    try:
        key = resolve_key(store, "//models:resnet")
        result = store.index.get_action(key)
        assert result is not None and result.label == "//models:resnet"
        files = result.output("files")
        assert files is not None
        assert resolve_key(store, key) == key
        assert resolve_key(store, files.digest) == key
        assert resolve_key(store, result.result_digest()) == key
        assert resolve_key(store, str(store.cas.path(files.digest))) == key
        monkeypatch.chdir(example.ws)
        value = next(example.ws.glob("mlbuild-out/models/eval.value.*"))
        assert store.index.get_action(resolve_key(store, str(value))).label == "//models:eval"  # type: ignore[union-attr]
    finally:
        store.close()


def parse_dot(text: str) -> tuple[set[str], set[tuple[str, str]]]:
    """A strict reader of the DOT subset lineage writes: returns (node ids, edges); raises on
    anything else, so a malformed graph fails the test."""
    quoted = r'"(?:[^"\\]|\\.)*"'
    attrs = rf"\[(?:\s*\w+=(?:{quoted}|\w+)\s*,?)*\]"
    lines = text.strip().splitlines()
    assert lines[0] == "digraph lineage {" and lines[-1] == "}"
    nodes: set[str] = set()
    edges: set[tuple[str, str]] = set()
    for line in lines[1:-1]:
        line = line.strip()
        if m := re.fullmatch(rf"({quoted})\s*->\s*({quoted})\s*{attrs};", line):
            edges.add((m.group(1), m.group(2)))
        elif m := re.fullmatch(rf"({quoted})\s*{attrs};", line):
            nodes.add(m.group(1))
        else:
            assert re.fullmatch(rf"(\w+=\w+|node\s*{attrs});", line), f"not DOT: {line!r}"
    assert {n for e in edges for n in e} <= nodes, "an edge names an undeclared node"
    return nodes, edges


def test_dot_output_is_a_graph_of_the_lineage(example: Example) -> None:
    text = run(example, "lineage", "--format", "dot", "//models:eval")
    nodes, edges = parse_dot(text)
    graph = lineage_json(example, "//models:eval")
    assert len(nodes) == len(graph.nodes) == 5
    expected = {(f'"a:{u.key}"', f'"a:{n.key}"') for n in graph.nodes for u in n.upstream}
    assert edges == expected and len(edges) == 5  # eval has two inputs; normalized feeds both
    assert text.count("{") == text.count("}")


def test_consumers_of_a_dataset_snapshot(example: Example) -> None:
    store = LocalStore(example.cache)
    try:
        split = store.index.get_action(resolve_key(store, "//data:split"))
        assert split is not None
        digest = split.result_digest()
        assert [c.label for c in consumers(store, digest)] == ["//features:normalized"]
        value = split.output("value")
        assert value is not None
        # An output digest is followed through the action that produced it.
        assert [c.label for c in consumers(store, value.digest)] == ["//features:normalized"]
        everything = consumers(store, digest, depth=None)
        assert [(c.label, c.depth) for c in everything] == [
            ("//features:normalized", 1), ("//models:eval", 2), ("//models:resnet", 2)
        ]
        tree = lineage_tree(store, split.key)
        assert msgspec.json.decode(msgspec.json.encode(tree), type=LineageGraph) == tree
        assert lineage_dot(tree).startswith("digraph")
    finally:
        store.close()
    assert run(example, "query", f"consumers({digest})").split() == ["//features:normalized"]
    assert run(example, "query", f"transitive_consumers({digest})").split() == [
        "//features:normalized", "//models:eval", "//models:resnet"
    ]
    assert run(example, "query", f"consumers({digest}, 2)").split() == [
        "//features:normalized", "//models:eval", "//models:resnet"
    ]


def test_bad_starts_are_one_clear_error(example: Example) -> None:
    env = {"MLBUILD_CACHE_DIR": str(example.cache)}
    for arg, message in [
        ("0" * 32, "no action in the cache has key or output digest"),
        ("//models:nothing", "//models:nothing has no recorded result"),
        ("no/such/file", "no such file"),
    ]:
        run = mlbuild(example.ws, "lineage", arg, env=env, check=False)
        assert run.returncode == 2
        assert message in run.stderr and "Traceback" not in run.stderr
    run = mlbuild(example.ws, "query", "consumers(//data:split)", env=env, check=False)
    assert run.returncode == 2 and "needs a 32-hex-digit digest" in run.stderr


def test_source_files_at_the_leaves(tmp_path: Path) -> None:
    ws = write_workspace(tmp_path / "ws", {
        "mlbuild.toml": "[workspace]\n",
        "data/table.csv": "a,b\n1,2\n",
        "data/BUILD.py": (
            "from mlbuild import File, target\n\n"
            'target(name="rows", rule="rows.py:rows", inputs={"table": File("table.csv")})\n'
        ),
        "data/rows.py": (
            "from pathlib import Path\n\nfrom mlbuild import rule\n\n\n"
            "@rule()\ndef rows(table: Path) -> int:\n    return len(table.read_text().splitlines())\n"
        ),
    })
    mlbuild(ws, "build", "-q", "//data:rows")
    node = mlbuild(ws, "lineage", "--json", "//data:rows").json()["nodes"][0]
    from mlbuild.cache.digest import digest_file

    assert node["sources"] == [{"input": "table", "digest": digest_file(ws / "data" / "table.csv")[0], "path": "data/table.csv"}]
    nodes, edges = parse_dot(mlbuild(ws, "lineage", "--format", "dot", "//data:rows").stdout)
    assert len(nodes) == 2 and len(edges) == 1
