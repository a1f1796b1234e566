"""The UI's server guards the cache it shows: Host header checked (DNS rebinding), a per-start
token beyond loopback, CSP and X-Frame-Options on every response, download names kept whole
(RFC 5987), ETags for what the page polls, and small API fixes (unknown pages, log tails,
target summaries). Real server processes where the address matters; Flask's client otherwise;
the download round-trip in headless Chromium."""

from __future__ import annotations

import http.client
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from mlbuild.cache.records import ActionResult, ArtifactRef, BuildAction, BuildRecord, KeySpec
from mlbuild.cache.store import LocalStore
from mlbuild.cache.trees import put_tree
from mlbuild.engine.commands.ui import access
from mlbuild.engine.ui.server import content_disposition, create_app
from mlbuild.engine.ui.views import MAX_LOG

CLI = [sys.executable, "-c", "import sys; from mlbuild.engine.cli import main; sys.exit(main())"]
NAME = "report #1 & final.txt"


def record(store: LocalStore, actions: list[BuildAction], **kw: Any) -> BuildRecord:
    r = BuildRecord(id=kw.pop("id", "20260101-000000-abcdef"), started=time.time(), finished=time.time(),
                    status="succeeded", user="u", host="h", workspace="/nowhere", argv=kw.pop("argv", ["mlbuild", "build", "//..."]),
                    targets=kw.pop("targets", [a.label for a in actions]), actions=actions, **kw)
    store.index.put_build(r)
    return r


def files_result(store: LocalStore, tmp_path: Path) -> ActionResult:
    out = tmp_path / "out"
    out.mkdir()
    (out / NAME).write_text("all good\n")
    digest, size = put_tree(store.cas, out)
    spec = KeySpec(1, "//r.py:f", "0" * 32, {}, None, "1" * 32)
    result = ActionResult("c" * 32, "//pkg:report", "//r.py:f", [ArtifactRef("files", digest, "tree", size)], spec)
    store.index.put_action(result)
    return result


# -- Host header and token -------------------------------------------------------------------


def test_host_header_must_name_the_server(store: LocalStore) -> None:
    client = create_app(store).test_client()
    assert client.get("/api/builds", headers={"Host": "127.0.0.1:8765"}).status_code == 200
    assert client.get("/api/builds", headers={"Host": "localhost"}).status_code == 200
    assert client.get("/api/builds", headers={"Host": "[::1]:8765"}).status_code == 200
    for evil in ("attacker.example", "attacker.example:8765", "127.0.0.1.nip.io:8765"):
        resp = client.get("/api/builds", headers={"Host": evil})
        assert resp.status_code == 421 and b"refused" in resp.data, evil
    assert client.get("/", headers={"Host": "attacker.example"}).status_code == 421


def test_real_server_refuses_a_rebound_host(tmp_cache_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        proc = subprocess.Popen([*CLI, "ui", "--port", "0"], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        url = _printed_url(log, proc)
        assert "token=" not in url  # loopback only: the Host check is enough
        host, port = re.match(r"http://([^:/]+):(\d+)/", url).groups()  # type: ignore[union-attr]
        assert _get(host, int(port), "/api/builds", "127.0.0.1:" + port)[0] == 200
        status, body = _get(host, int(port), "/api/builds", "rebind.attacker.example:" + port)
        assert status == 421 and b"refused" in body
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_beyond_loopback_a_token_is_required(tmp_cache_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        proc = subprocess.Popen([*CLI, "ui", "--host", "0.0.0.0", "--port", "0"], cwd=tmp_path, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = _printed_url(log, proc)
        m = re.match(r"http://0\.0\.0\.0:(\d+)/\?token=([\w-]+)$", url)
        assert m, url
        port, token = int(m.group(1)), m.group(2)
        assert len(token) >= 20
        assert _get("127.0.0.1", port, "/api/builds", f"127.0.0.1:{port}")[0] == 403
        assert _get("127.0.0.1", port, "/api/builds?token=wrong", f"127.0.0.1:{port}")[0] == 403
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", f"/builds?token={token}&status=failed")
        resp = conn.getresponse()
        resp.read()
        # The token becomes a cookie and leaves the address bar.
        assert resp.status == 303 and resp.getheader("Location") == "/builds?status=failed"
        cookie = resp.getheader("Set-Cookie") or ""
        assert cookie.startswith(f"mlbuild_token={token}") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        conn.request("GET", "/api/builds", headers={"Cookie": f"mlbuild_token={token}"})
        ok = conn.getresponse()
        assert ok.status == 200 and msgspec.json.decode(ok.read()) == {"builds": [], "total": 0}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # Another start, another token.
    assert access("0.0.0.0")[1] != access("0.0.0.0")[1]
    assert access("127.0.0.1") == ({"127.0.0.1", "localhost", "::1"}, None)
    hosts, token2 = access("10.1.2.3")
    assert hosts is not None and "10.1.2.3" in hosts and token2


def _printed_url(log: Path, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(r"serving \S+ at (\S+)", log.read_text())
        if m:
            return m.group(1)
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
    raise AssertionError(f"mlbuild ui printed no URL:\n{log.read_text()}")


def _get(host: str, port: int, path: str, host_header: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", host_header)
    conn.endheaders()
    resp = conn.getresponse()
    return resp.status, resp.read()


# -- headers, ETags, pages -------------------------------------------------------------------


def test_security_headers_etags_and_the_404_page(store: LocalStore) -> None:
    r = record(store, [BuildAction("//p:t1", None, "skipped")])
    client = create_app(store).test_client()
    for path in ("/", "/builds", "/api/builds", f"/api/builds/{r.id}", "/static/app.js", "/nope"):
        resp = client.get(path)
        assert resp.headers["X-Frame-Options"] == "DENY", path
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    # Unknown pages get the app's page (which draws "Not found"), with a 404 status; the API JSON.
    page = client.get("/no/such/page")
    assert page.status_code == 404 and page.mimetype == "text/html" and b"/static/app.js" in page.data
    assert client.get("/api/nope").get_json()["error"].startswith("no such API route")
    # What the page polls answers 304 while the record is unchanged.
    first = client.get(f"/api/builds/{r.id}")
    etag = first.headers["ETag"]
    assert client.get(f"/api/builds/{r.id}", headers={"If-None-Match": etag}).status_code == 304
    assert client.get(f"/api/builds/{r.id[:-3]}", headers={"If-None-Match": etag}).status_code == 304  # a prefix
    r.status = "failed"
    store.index.put_build(r)
    changed = client.get(f"/api/builds/{r.id}", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.get_json()["build"]["status"] == "failed"
    listed = client.get("/api/builds")
    assert client.get("/api/builds", headers={"If-None-Match": listed.headers["ETag"]}).status_code == 304


def test_summaries_not_label_lists(store: LocalStore) -> None:
    labels = [f"//p{i // 100:04d}:t{i}" for i in range(3000)]
    r = record(store, [BuildAction(x, None, "skipped") for x in labels],
               argv=["mlbuild", "build", "//...", "--set", "//p0000:t1.n=2"])
    client = create_app(store).test_client()
    (summary,) = client.get("/api/builds").get_json()["builds"]
    assert summary["target_count"] == 3000 and len(summary["targets"]) == 20
    assert summary["patterns"] == ["//..."]
    assert summary["argv"] == r.argv and shlex.join(summary["argv"]).endswith("//p0000:t1.n=2")
    nodes = client.get(f"/api/builds/{r.id}").get_json()["dag"]
    assert len(nodes["groups"]) == 30 and nodes["group_layers"] >= 1
    # Natural order: t1, t2, ..., t10 (not t1, t10, t100).
    first = [n["label"] for n in nodes["nodes"][:12]]
    assert first == [f"//p0000:t{i}" for i in range(12)]


def test_log_tail_starts_at_a_whole_line(store: LocalStore) -> None:
    lines = b"".join(b"line %06d of the log\n" % i for i in range(70_000))
    assert len(lines) > MAX_LOG
    digest = store.cas.put_bytes(lines)
    log = create_app(store).test_client().get(f"/api/logs/{digest}").get_json()
    assert log["truncated"] and log["size"] == len(lines)
    assert log["text"].startswith("line ") and log["text"].endswith("line 069999 of the log\n")
    assert len(log["text"]) <= MAX_LOG


# -- download names --------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=60))
def test_content_disposition_keeps_any_name(name: str) -> None:
    from urllib.parse import unquote

    header = content_disposition(name)
    assert "\n" not in header and "\r" not in header and header.isascii()
    # RFC 6266: the ASCII fallback is a plain quoted token, the exact name is filename*.
    m = re.fullmatch(r'attachment; filename="([A-Za-z0-9._ -]*)"; filename\*=UTF-8\'\'([A-Za-z0-9%._~-]+)', header)
    assert m, header
    got = unquote(m.group(2), errors="strict")
    expected = re.sub(r"[\x00-\x1f\x7f/\\]", "_", name).strip() or "download"
    assert got == expected


def test_download_name_round_trip(browser: Any, store: LocalStore, tmp_path: Path) -> None:
    from werkzeug.serving import make_server

    result = files_result(store, tmp_path)
    r = record(store, [BuildAction("//pkg:report", result.key, "executed", 0.1)])
    client = create_app(store).test_client()
    out = client.get(f"/api/actions/{result.key}/output").get_json()["outputs"][0]
    (entry,) = out["blocks"][0]["files"]
    assert entry["url"].endswith("?name=" + quote(NAME, safe=""))
    resp = client.get(entry["url"])
    assert resp.data == b"all good\n"
    assert f"filename*=UTF-8''{quote(NAME, safe='')}" in resp.headers["Content-Disposition"]

    srv = make_server("127.0.0.1", 0, create_app(store), threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    context = browser.new_context(accept_downloads=True)
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"http://127.0.0.1:{srv.server_port}/builds/{r.id}#run={result.key}&tab=output")
        link = page.wait_for_selector(".files a:text('download')")
        assert link
        with page.expect_download() as info:
            link.click()
        download = info.value
        assert download.suggested_filename == NAME
        assert Path(download.path()).read_bytes() == b"all good\n"
    finally:
        context.close()
        srv.shutdown()
        thread.join(timeout=10)
