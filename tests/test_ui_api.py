"""The UI's JSON API (docs/ui-api.md) on its own: Flask's test client over a real local store
filled by real builds of a small workspace, and ``mlbuild ui`` as a real server process for
the state file and the failed-step link. A running build is followed through the API live."""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlbuild.cache.records import ArtifactRef
from mlbuild.cache.store import LocalStore
from mlbuild.engine.ui.render import png_bytes, render_artifact, render_value
from mlbuild.engine.ui.server import create_app
from mlbuild.engine.ui.state import UiState, running_ui, step_link, write_state

from support.cli import mlbuild
from support.workspace import write_workspace

FILES = {
    "mlbuild.toml": '[workspace]\nname = "ui-test"\n',
    "pkg/__init__.py": "",
    "pkg/raw.txt": "1 2 3\n",
    "pkg/BUILD.py": (
        "from mlbuild import File, target\n\n"
        'target(name="data", rule="steps.py:data", inputs={"raw": File("raw.txt")}, config={"n": 4})\n'
        'target(name="report", rule="steps.py:report", inputs={"data": ":data"})\n'
        'target(name="broken", rule="steps.py:broken", inputs={"data": ":data"})\n'
        'target(name="slow", rule="steps.py:slow", inputs={"data": ":data"}, config={"release": ""})\n'
    ),
    "pkg/steps.py": '''
import json
import struct
import time
import zlib
from pathlib import Path

import numpy as np
from mlbuild import rule


def tiny_png() -> bytes:
    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
    raw = b"".join(b"\\x00" + bytes([x * 60 for x in range(4)]) for _ in range(4))
    return (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@rule()
def data(raw: Path, config: dict) -> dict:
    values = [int(x) for x in raw.read_text().split()]
    return {
        "accuracy": 0.5 + config["n"] / 100,
        "losses": [1.0, 0.5, 0.25],
        "total": sum(values),
        "weights": np.arange(100, dtype=np.float32).reshape(10, 10),
        "confusion_matrix": np.array([[3, 1], [0, 4]]),
        "picture": (np.arange(256).reshape(16, 16) % 251).astype(np.uint8),
        "note": "hello",
    }


@rule()
def report(data: dict, out: Path) -> None:
    print("writing the report")
    (out / "summary.json").write_text(json.dumps({"accuracy": data["accuracy"]}))
    (out / "plot.png").write_bytes(tiny_png())
    (out / "notes.txt").write_text("all good\\n")


@rule()
def broken(data: dict) -> int:
    print("about to fail")
    raise ValueError("deliberate failure")


@rule()
def slow(data: dict, config: dict) -> int:
    release = Path(config["release"])
    deadline = time.monotonic() + 120
    while not release.exists():  # the test creates it once it has seen this step running
        if time.monotonic() > deadline:
            raise TimeoutError("never released")
        time.sleep(0.05)
    return 1
''',
}

REPO = Path(__file__).resolve().parent.parent


def wait_until(what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll ``probe`` until it returns something truthy, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return write_workspace(tmp_path / "ws", FILES)


@pytest.fixture
def client(store: LocalStore) -> Any:
    return create_app(store).test_client()


@pytest.fixture
def built(ws: Path, client: Any) -> dict[str, Any]:
    """One build of //pkg:report; its detail from the API."""
    mlbuild(ws, "build", "//pkg:report")
    builds = client.get("/api/builds").get_json()["builds"]
    return client.get(f"/api/builds/{builds[0]['id']}").get_json()


def nodes_by_label(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["label"]: n for n in detail["dag"]["nodes"]}


def find_block(blocks: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for b in blocks:
        if b["kind"] == kind and b["name"] == name:
            return b
        for child in b.get("blocks", []) + b.get("rendered", []):
            try:
                return find_block([child], kind, name)
            except LookupError:
                pass
    raise LookupError(f"no {kind} block {name!r}")


# -- builds ------------------------------------------------------------------------------


def test_build_list_newest_first_and_filters(ws: Path, client: Any, built: dict[str, Any]) -> None:
    mlbuild(ws, "build", "//pkg:data")
    builds = client.get("/api/builds").get_json()
    assert builds["total"] == 2
    first, second = builds["builds"]
    assert first["started"] >= second["started"]
    assert first["targets"] == ["//pkg:data"] and first["counts"] == {"cached": 1}
    assert second["status"] == "succeeded" and second["counts"] == {"executed": 2}

    def ids(query: str) -> list[str]:
        return [b["id"] for b in client.get("/api/builds" + query).get_json()["builds"]]

    assert ids("?target=//pkg:report") == [second["id"]]
    assert ids("?target=//pkg:data") == [first["id"], second["id"]]  # built in both
    assert ids("?status=failed") == []
    assert ids("?status=succeeded&limit=1") == [first["id"]]
    assert ids("?commit=0123abc") == []  # the workspace is no git checkout: no commit


def test_build_detail_dag_nodes_edges_layers(built: dict[str, Any], ws: Path, client: Any) -> None:
    nodes = nodes_by_label(built)
    assert set(nodes) == {"//pkg:data", "//pkg:report"}
    assert all(n["status"] == "executed" and n["key"] == n["id"] for n in nodes.values())
    assert built["dag"]["edges"] == [{"source": "//pkg:data", "target": "//pkg:report", "input": "data"}]
    assert nodes["//pkg:data"].get("layer", 0) == 0 and nodes["//pkg:report"]["layer"] == 1  # defaults omitted
    mlbuild(ws, "build", "//pkg:report")
    again = client.get("/api/builds").get_json()["builds"][0]
    detail = client.get(f"/api/builds/{again['id'][:-2]}").get_json()  # a unique prefix names it
    assert {n["status"] for n in detail["dag"]["nodes"]} == {"cached"}


def test_step_inputs_outputs_and_rendering(built: dict[str, Any], client: Any) -> None:
    nodes = nodes_by_label(built)
    report = client.get(f"/api/actions/{nodes['//pkg:report']['key']}").get_json()
    (data_input,) = report["inputs"]
    assert data_input["producer_label"] == "//pkg:data"
    assert data_input["producer_key"] == nodes["//pkg:data"]["key"]
    data = client.get(f"/api/actions/{nodes['//pkg:data']['key']}").get_json()
    (raw,) = data["inputs"]
    assert raw["producer_key"] is None and raw["source"] == "pkg/raw.txt"
    assert data["config"] == {"n": 4}

    out = client.get(f"/api/actions/{nodes['//pkg:data']['key']}/output").get_json()
    (value,) = out["outputs"]
    blocks = value["blocks"]
    rows = dict(find_block(blocks, "scalars", "value")["rows"])
    assert rows["accuracy"] == pytest.approx(0.54) and rows["total"] == 6 and rows["note"] == "hello"
    assert rows["losses"] == [1.0, 0.5, 0.25]
    # A square numeric matrix is a heatmap by its shape, whatever its name.
    weights = find_block(blocks, "heatmap", "weights")
    assert len(weights["matrix"]) == 10 and (weights["min"], weights["max"]) == (0.0, 99.0)
    assert weights["counts"] is False
    picture = find_block(blocks, "array", "picture")
    assert len(picture["images"]) == 1 and picture["images"][0].startswith("data:image/png;base64,")
    confusion = find_block(blocks, "heatmap", "confusion_matrix")
    assert confusion["matrix"] == [[3, 1], [0, 4]] and confusion["max"] == 4 and confusion["counts"]

    files = client.get(f"/api/actions/{nodes['//pkg:report']['key']}/output").get_json()["outputs"][0]
    assert files["codec"] == "tree"
    listing = files["blocks"][0]
    assert [f["path"] for f in listing["files"]] == ["notes.txt", "plot.png", "summary.json"]
    assert listing["total"] == sum(f["size"] for f in listing["files"])
    image = find_block(listing["rendered"], "image", "plot.png")
    png = client.get(image["src"])
    assert png.status_code == 200 and png.mimetype == "image/png" and png.data.startswith(b"\x89PNG")
    summary = find_block(listing["rendered"], "text", "summary.json")
    assert summary["language"] == "json" and json.loads(summary["text"]) == {"accuracy": pytest.approx(0.54)}


def test_blob_download_is_verified(built: dict[str, Any], client: Any, store: LocalStore) -> None:
    key = nodes_by_label(built)["//pkg:data"]["key"]
    ref = client.get(f"/api/actions/{key}").get_json()["outputs"][0]
    resp = client.get(ref["url"])
    assert resp.status_code == 200 and resp.data == store.cas.get_bytes(ref["digest"])
    assert "attachment" in resp.headers["Content-Disposition"]
    assert client.get("/api/blobs/../../etc/passwd").status_code == 404
    assert client.get("/api/blobs/nothex").status_code == 400
    assert client.get("/api/blobs/" + "0" * 32).status_code == 404
    path = store.cas.path(ref["digest"])
    os.chmod(path, 0o644)
    path.write_bytes(b"tampered")
    bad = client.get(ref["url"])
    assert bad.status_code == 404 and "corrupt" in bad.get_json()["error"]
    assert not path.exists()  # a corrupt blob is removed, as on every read


def test_code_environment_config(built: dict[str, Any], client: Any) -> None:
    key = nodes_by_label(built)["//pkg:data"]["key"]
    code = client.get(f"/api/actions/{key}/code").get_json()
    assert code["available"] and code["rule"].endswith("steps.py:data")
    fn = next(f for f in code["functions"] if f["name"].endswith(".data"))
    assert "def data(raw: Path, config: dict) -> dict:" in fn["source"] and fn["file"] == "pkg/steps.py"
    env = client.get(f"/api/actions/{key}/env").get_json()
    assert env["available"] and env["python"] == platform.python_version()
    assert env["packages"]["numpy"] == np.__version__


def test_failed_step_logs_and_error(ws: Path, client: Any) -> None:
    proc = mlbuild(ws, "build", "//pkg:broken", check=False)
    assert proc.returncode != 0 and "see http" not in proc.stderr  # no UI runs
    build = client.get("/api/builds?status=failed").get_json()["builds"][0]
    assert build["counts"] == {"executed": 1, "failed": 1}
    broken = nodes_by_label(client.get(f"/api/builds/{build['id']}").get_json())["//pkg:broken"]
    assert broken["status"] == "failed" and "deliberate failure" in broken["error"]
    log = client.get(f"/api/logs/{broken['log_digest']}").get_json()
    assert "about to fail" in log["text"] and not log["truncated"]
    assert client.get(f"/api/actions/{broken['key']}").status_code == 404  # no stored result
    why = client.get(f"/api/builds/{build['id']}/why/pkg:broken").get_json()
    assert why["explanation"]["verdict"] == "failed"


def test_lineage_why_and_target_history(ws: Path, built: dict[str, Any], client: Any) -> None:
    nodes = nodes_by_label(built)
    lineage = client.get(f"/api/actions/{nodes['//pkg:report']['key']}/lineage").get_json()
    assert [n["label"] for n in lineage["upstream"]["nodes"]] == ["//pkg:report", "//pkg:data"]
    assert lineage["upstream"]["nodes"][1]["sources"][0]["path"] == "pkg/raw.txt"
    down = client.get(f"/api/actions/{nodes['//pkg:data']['key']}/lineage").get_json()["downstream"]
    assert [(c["label"], c["input"]) for c in down] == [("//pkg:report", "data")]

    mlbuild(ws, "build", "//pkg:report", "--set", "//pkg:data.n=5")
    newest = client.get("/api/builds").get_json()["builds"][0]["id"]
    why = client.get(f"/api/builds/{newest}/why/pkg:data").get_json()
    assert why["explanation"]["verdict"] == "rebuilt"
    assert any("config n: 4 -> 5" in t for t in why["texts"])
    history = client.get("/api/targets/pkg:data").get_json()
    assert [e["build_id"] for e in history["entries"]][0] == newest
    latest, first = history["entries"]
    assert [c["kind"] for c in latest["causes"]] == ["config"] and latest["texts"] == ["config n: 4 -> 5"]
    assert first["causes"] == []
    assert client.get("/api/targets").get_json()["targets"] == ["//pkg:data", "//pkg:report"]


def test_not_found_and_pages(client: Any) -> None:
    assert client.get("/api/builds/nope").status_code == 404
    assert client.get("/api/targets/pkg:nothing").status_code == 404
    assert client.get("/api/actions/" + "a" * 32).status_code == 404
    assert client.get("/api/actions/xyz").status_code == 400
    assert client.get("/api/no-such-route").get_json()["error"].startswith("no such API route")
    for path in ("/", "/builds", "/builds/abc", "/targets", "/targets/pkg:data"):
        page = client.get(path)
        assert page.status_code == 200 and b'<script type="module" src="/static/app.js">' in page.data
    for name in ("app.js", "build.js", "tabs.js", "blocks.js", "dag.js", "dom.js", "pages.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200


# -- a running build, live ------------------------------------------------------------------


def test_running_build_shows_progress_live(ws: Path, client: Any, tmp_path: Path) -> None:
    release = tmp_path / "release"
    env = {**os.environ}
    cmd = [sys.executable, "-c", "import sys; from mlbuild.engine.cli import main; sys.exit(main())",
           "build", "//pkg:slow", "--set", f"//pkg:slow.release={json.dumps(str(release))}"]
    proc = subprocess.Popen(cmd, cwd=ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def running_with_progress() -> dict[str, Any] | None:
            builds = client.get("/api/builds").get_json()["builds"]
            if not builds or builds[0]["status"] != "running":
                return None
            detail = client.get(f"/api/builds/{builds[0]['id']}").get_json()
            nodes = nodes_by_label(detail)
            ready = nodes.get("//pkg:data", {}).get("status") == "executed" and nodes.get("//pkg:slow", {}).get("status") == "running"
            return detail if ready else None

        detail = wait_until("the build running, //pkg:data done, //pkg:slow running", running_with_progress)
        assert detail["dag"]["planned"] and detail["build"]["finished"] is None
        assert {"source": "//pkg:data", "target": "//pkg:slow", "input": "data"} in detail["dag"]["edges"]
        release.touch()
        build_id = detail["build"]["id"]

        def finished() -> dict[str, Any] | None:
            d = client.get(f"/api/builds/{build_id}").get_json()
            return d if d["build"]["status"] != "running" else None

        done = wait_until("the build finished", finished)
        assert done["build"]["status"] == "succeeded"
        assert nodes_by_label(done)["//pkg:slow"]["status"] == "executed"
        assert proc.wait(timeout=120) == 0
    finally:
        release.touch()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


# -- the server process, its state file, the failed-step link --------------------------------


def test_ui_server_state_file_and_failed_step_link(ws: Path, tmp_cache_dir: Path) -> None:
    log = ws.parent / "ui.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-c", "import sys; from mlbuild.engine.cli import main; sys.exit(main())",
             "ui", "--port", "0"], cwd=ws, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    state_file = tmp_cache_dir / "ui.json"
    try:
        state = wait_until("ui.json", lambda: running_ui(tmp_cache_dir), timeout=60)
        assert state.pid == server.pid and re.fullmatch(r"http://127\.0\.0\.1:\d+", state.url)
        with urllib.request.urlopen(state.url + "/api/builds", timeout=10) as resp:
            assert json.load(resp) == {"builds": [], "total": 0}
        assert f"serving {tmp_cache_dir} at {state.url}/" in log.read_text()

        proc = mlbuild(ws, "build", "//pkg:broken", check=False)
        assert proc.returncode == 1
        link = re.search(r"see (http://\S+)", proc.stderr)
        assert link, proc.stderr
        with urllib.request.urlopen(state.url + "/api/builds", timeout=10) as resp:
            build_id = json.load(resp)["builds"][0]["id"]
        with urllib.request.urlopen(state.url + f"/api/builds/{build_id}", timeout=10) as resp:
            key = next(n["key"] for n in json.load(resp)["dag"]["nodes"] if n["label"] == "//pkg:broken")
        assert link.group(1) == f"{state.url}/builds/{build_id}#run={key}&tab=logs"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert server.returncode == 0
    assert not state_file.exists()  # removed on exit
    assert running_ui(tmp_cache_dir) is None
    proc = mlbuild(ws, "build", "//pkg:broken", check=False)
    assert "see http" not in proc.stderr


def test_stale_state_file_gives_no_link(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_state(tmp_path, UiState(url="http://127.0.0.1:1", pid=dead.pid))
    assert step_link(tmp_path, "b", "k") is None
    write_state(tmp_path, UiState(url="http://127.0.0.1:1", pid=os.getpid()))
    assert step_link(tmp_path, "b 1", "k") == "http://127.0.0.1:1/builds/b%201#run=k&tab=logs"


def test_ui_refuses_a_bad_port(ws: Path) -> None:
    proc = mlbuild(ws, "ui", "--port", "70000", check=False)
    assert proc.returncode == 2 and "--port 70000" in proc.stderr and "Traceback" not in proc.stderr


# -- rendering on its own ------------------------------------------------------------------


def test_png_bytes_is_a_valid_png() -> None:
    png = png_bytes(np.arange(64, dtype=np.float32).reshape(8, 8), scale_to=16)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, color = struct.unpack(">IIBB", png[16:26])
    assert (width, height, depth, color) == (16, 16, 8, 0)
    idat = png[png.index(b"IDAT") + 4 : png.index(b"IEND") - 8]
    assert len(zlib.decompress(idat)) == 16 * (1 + 16)
    rgb = png_bytes(np.zeros((3, 5, 5), dtype=np.uint8), scale_to=5)
    assert struct.unpack(">IIBB", rgb[16:26]) == (5, 5, 8, 2)


def test_pickled_values_are_never_unpickled(store: LocalStore) -> None:
    import pickle

    digest = store.cas.put_bytes(pickle.dumps({"x": 1}))
    (block,) = render_artifact(store.cas, ArtifactRef("value", digest, "pickle", 10))
    assert type(block).__name__ == "Note"
    assert "never unpickled" in block.text  # type: ignore[attr-defined]


def test_render_value_shapes() -> None:
    (arr,) = render_value("xs", list(range(100)))
    assert type(arr).__name__ == "ArraySummary" and arr.shape == [100]  # type: ignore[attr-defined]
    assert arr.series == [float(x) for x in range(100)]  # type: ignore[attr-defined]  # a line chart
    (sim,) = render_value("similarity", np.eye(5) * 0.5)
    assert type(sim).__name__ == "Heatmap" and sim.min == 0.0 and not sim.counts  # type: ignore[attr-defined]
    (long,) = render_value("loss", np.linspace(1, 0, 10_000))
    assert len(long.series) == 2000 and long.series[0] == 1.0  # type: ignore[attr-defined]
    (batch,) = render_value("imgs", np.zeros((20, 3, 8, 8), dtype=np.float32))
    assert len(batch.images) == 8  # type: ignore[attr-defined]
    (table,) = render_value("tbl", np.zeros((1000, 3), dtype=np.float32))
    assert table.images == []  # type: ignore[attr-defined]  # a long thin matrix is no image
    (text,) = render_value("doc", '{"a": [1, 2]}')
    assert text.language == "json"  # type: ignore[attr-defined]
