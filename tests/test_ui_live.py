"""A build followed live in headless Chromium: a real ``mlbuild build`` in a subprocess whose
step prints, waits for the test, prints again. The page shows each line while the step runs
(the runner grows the log in ``<cache>/tmp/live``), asks the server again only while the build
runs and only with If-None-Match, and keeps focus and text selection across its polls."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mlbuild.engine.ui.live import TAIL, live_log

CLI = [sys.executable, "-c", "import sys; from mlbuild.engine.cli import main; sys.exit(main())"]
TIMEOUT_MS = 30_000
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "ui"

FILES = {
    "mlbuild.toml": '[workspace]\nname = "ui-live"\n',
    "pkg/__init__.py": "",
    "pkg/BUILD.py": (
        "from mlbuild import target\n\n"
        'target(name="first", rule="steps.py:first")\n'
        'target(name="talk", rule="steps.py:talk", inputs={"n": ":first"}, config={"gate": ""})\n'
    ),
    "pkg/steps.py": '''
import time
from pathlib import Path

from mlbuild import rule


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():  # the test creates it once it has seen what came before
        if time.monotonic() > deadline:
            raise TimeoutError(f"never released: {path}")
        time.sleep(0.05)


@rule()
def first() -> int:
    return 1


@rule()
def talk(n: int, config: dict) -> int:
    gate = Path(config["gate"])
    print("epoch 1: loss 0.9", flush=True)
    wait_for(gate / "more")
    print("epoch 2: loss 0.5", flush=True)
    wait_for(gate / "done")
    return n + 1
''',
}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def server(ui_server: str) -> str:
    return ui_server


def wait_for_answers(page: Any, asked: list[tuple[str, int]], which: Any, count: int) -> None:
    """Until the page has had ``count`` answers in all, the last two of the kind ``which``."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not (len(asked) >= count and all(which(u) for u, _ in asked[-2:])):
        if time.monotonic() > deadline:
            builds = msgspec.json.decode(urllib.request.urlopen(page.url.split("/builds")[0] + "/api/builds").read())
            raise AssertionError(f"the page did not ask again: {asked[-5:]}; "
                                 f"builds now: {[(b['status'], b['counts']) for b in builds['builds']]}")
        page.wait_for_timeout(100)


def test_live_log_focus_and_selection_across_polls(browser: Any, server: str, ws: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    # An older, finished build: its row and id are what the user selects and focuses below.
    done = subprocess.run([*CLI, "build", "//pkg:first"], cwd=ws, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    build_log = tmp_path / "build.log"
    with build_log.open("w") as out:
        # A session of its own: its worker processes are stopped with it, whatever happens here.
        proc = subprocess.Popen([*CLI, "build", "//pkg:talk", "--set", f"//pkg:talk.gate={json.dumps(str(gate))}"],
                                cwd=ws, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    asked: list[tuple[str, int]] = []
    page.on("response", lambda r: asked.append((r.url, r.status)) if "/api/builds" in r.url and "/why/" not in r.url else None)
    try:
        # The builds list, while a build runs: focus and a selected build id survive its polls.
        # The list asks again only while a build runs (and on coming back into view): open it
        # once the build has its record.
        deadline = time.monotonic() + 120
        while not any(b["status"] == "running" for b in msgspec.json.decode(urllib.request.urlopen(server + "/api/builds").read())["builds"]):
            assert time.monotonic() < deadline and proc.poll() is None, build_log.read_text()
            time.sleep(0.1)
        page.goto(server + "/builds")
        page.wait_for_selector('tr[data-build] .badge[data-status="running"]')
        old_id = page.locator("tr[data-build]").nth(1).get_attribute("data-build")
        link = page.locator(f'tr[data-build="{old_id}"] a.build-link')
        link.focus()
        page.evaluate("""id => { const a = [...document.querySelectorAll('a.build-link')].find(e => e.textContent === id);
            const r = document.createRange(); r.selectNodeContents(a); getSelection().removeAllRanges(); getSelection().addRange(r); }""", old_id)
        seen = len(asked)
        wait_for_answers(page, asked, lambda u: u.endswith("/api/builds"), seen + 2)
        assert page.evaluate("document.activeElement.textContent") == old_id
        assert page.evaluate("getSelection().toString()") == old_id
        list_polls = [s for u, s in asked if u.endswith("/api/builds")]
        assert 304 in list_polls  # nothing changed: no body sent again

        # The running step's log, line by line, while it runs.
        page.click('tr[data-build] .badge[data-status="running"] >> xpath=ancestor::tr//a[contains(@class, "build-link")]')
        page.wait_for_selector('svg.dag g.node[data-label="//pkg:talk"][data-status="running"]')
        page.click('svg.dag g.node[data-label="//pkg:talk"]')
        page.click('.tab[data-tab="logs"]')
        page.wait_for_selector("#panel pre.log.live:has-text('epoch 1: loss 0.9')")
        assert "epoch 2" not in page.inner_text("#panel pre.log")
        # Focus in the search box and typed text survive the page's polls of the build.
        page.fill("input.search", "tal")
        page.focus("input.search")
        polls = len(asked)
        (gate / "more").touch()
        page.wait_for_selector("#panel pre.log.live:has-text('epoch 2: loss 0.5')")
        wait_for_answers(page, asked, lambda u: "/api/builds/" in u, polls + 2)
        assert page.evaluate("document.activeElement.classList.contains('search')")
        assert page.input_value("input.search") == "tal"
        assert [s for u, s in asked if "/api/builds/" in u].count(304) >= 1
        text = page.inner_text("#panel pre.log")
        assert text.index("epoch 1") < text.index("epoch 2") and text.count("epoch 1") == 1
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "live-log.png"))

        (gate / "done").touch()
        assert proc.wait(timeout=120) == 0, build_log.read_text()
        # The build ends: the node turns executed, the stored log replaces the live one, polling stops.
        page.wait_for_selector('svg.dag g.node[data-label="//pkg:talk"][data-status="executed"]')
        page.wait_for_selector("#panel pre.log:not(.live):has-text('epoch 2: loss 0.5')")
        page.wait_for_selector("#live[hidden]", state="attached")
        after = len(asked)
        page.wait_for_timeout(2500)
        assert len(asked) == after  # nothing runs: nothing asked
        assert errors == []
    finally:
        (gate / "more").touch()
        (gate / "done").touch()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        context.close()


def test_live_chunks_are_whole_lines(tmp_path: Path) -> None:
    """/api/live serves whole lines: the tail from a line start, a partial last line held back."""
    from mlbuild.engine.run.live_logs import open_live_log, running_logs

    with open_live_log(tmp_path, "k" * 32, "//pkg:talk") as log:
        log.write(b"x" * (TAIL + 100) + b"\nsecond line\nthird, partial")
        log.flush()
        (found,) = running_logs(tmp_path)
        assert found.label == "//pkg:talk" and found.pid == os.getpid()
        tail = live_log(tmp_path, "//pkg:talk", None)
        assert tail.running and tail.text == "second line\n"
        assert tail.next == TAIL + 101 + len("second line\n")
        assert live_log(tmp_path, "//pkg:talk", tail.next).text == ""  # the partial line waits
        log.write(b" now whole\n")
        log.flush()
        assert live_log(tmp_path, "//pkg:talk", tail.next).text == "third, partial now whole\n"
        assert not live_log(tmp_path, "//other:step", None).running
    assert running_logs(tmp_path) == [] and not list((tmp_path / "live").iterdir())  # removed at the end
    assert not live_log(tmp_path, "//pkg:talk", 0).running


def test_stale_live_log_is_ignored(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / "live"
    folder.mkdir()
    (folder / f"{'a' * 32}-{dead.pid}.log").write_text("old\n")
    (folder / f"{'a' * 32}-{dead.pid}.json").write_text(json.dumps(
        {"key": "a" * 32, "label": "//pkg:talk", "pid": dead.pid, "started": time.time()}))
    assert not live_log(tmp_path, "//pkg:talk", None).running
