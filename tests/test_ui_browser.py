"""The UI driven in headless Chromium (Debian's, through Playwright): the example's build, a
deep link to a step and tab that a fresh browser context opens the same, and Back returning
to the previous selection. Screenshots of each main page go to ``test-artifacts/ui/``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from support.cli import mlbuild
from support.ui import ui_command

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "test-artifacts" / "ui"
TIMEOUT_MS = 20_000


@pytest.fixture
def example_ui(tmp_path: Path) -> Iterator[str]:
    """The resnet example built once in a copy, and ``mlbuild ui`` serving its cache."""
    ws = tmp_path / "resnet"
    shutil.copytree(REPO / "examples" / "resnet", ws, ignore=shutil.ignore_patterns("mlbuild-out", "__pycache__"))
    mlbuild(ws, "//models:eval")
    with ui_command(ws, tmp_path / "ui.log") as url:
        yield url


def selection(url: str) -> tuple[str | None, str | None]:
    params = parse_qs(urlsplit(url).fragment)
    return params.get("run", [None])[0], params.get("tab", [None])[0]


def expect_selected(page: Any, label: str, key: str, tab: str) -> None:
    """The panel shows ``label``'s step (action ``key``) with ``tab`` open and loaded."""
    page.wait_for_selector(f'#panel[data-run="{key}"][data-tab="{tab}"]', timeout=TIMEOUT_MS)
    assert page.inner_text("#panel .step-label") == label
    assert page.get_attribute('.tab[aria-selected="true"]', "data-tab") == tab
    assert page.locator(f'g.node.selected[data-label="{label}"]').count() == 1
    page.wait_for_function("() => !document.querySelector('#panel .tab-body').textContent.startsWith('Loading')",
                           timeout=TIMEOUT_MS)


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_deep_link_to_a_step_and_tab_and_back(browser: Any, example_ui: str) -> None:
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(TIMEOUT_MS)

    page.goto(example_ui + "/")
    page.wait_for_selector("a.build-link")
    assert page.locator("tr[data-build]").count() == 1
    shot(page, "builds")

    page.click("a.build-link")
    page.wait_for_selector('g.node[data-label="//models:resnet"]')
    assert urlsplit(page.url).path.startswith("/builds/")
    labels = sorted(page.eval_on_selector_all("g.node", "els => els.map(e => e.dataset.label)"))
    assert labels == ["//data:digits", "//data:split", "//features:normalized", "//models:eval", "//models:resnet"]
    assert page.locator('g.node[data-status="executed"]').count() == 5
    assert page.locator("path.edge").count() == 5
    shot(page, "build")

    page.click('g.node[data-label="//features:normalized"]')
    page.click('.tab[data-tab="config"]')
    normalized = page.get_attribute('g.node[data-label="//features:normalized"]', "data-id")
    expect_selected(page, "//features:normalized", normalized, "config")

    page.click('g.node[data-label="//models:resnet"]')
    resnet = page.get_attribute('g.node[data-label="//models:resnet"]', "data-id")
    page.click('.tab[data-tab="output"]')
    expect_selected(page, "//models:resnet", resnet, "output")
    page.wait_for_selector('.artifact[data-output="value"] table.kv')
    assert "final_loss" in page.inner_text('.artifact[data-output="value"]')
    link = page.url
    assert selection(link) == (resnet, "output")
    shot(page, "step-output")

    fresh = browser.new_context(viewport={"width": 1440, "height": 900})
    other = fresh.new_page()
    other.set_default_timeout(TIMEOUT_MS)
    other.goto(link)
    expect_selected(other, "//models:resnet", resnet, "output")
    other.wait_for_selector('.artifact[data-output="files"]')
    assert "model.safetensors" in other.inner_text('.artifact[data-output="files"]')
    fresh.close()

    page.go_back()
    expect_selected(page, "//features:normalized", normalized, "config")
    assert selection(page.url) == (normalized, "config")
    page.go_back()
    page.wait_for_selector("#panel .empty")
    assert selection(page.url) == (None, None)
    page.go_forward()
    expect_selected(page, "//features:normalized", normalized, "config")

    page.click('g.node[data-label="//models:eval"]')
    page.click('.tab[data-tab="output"]')
    page.wait_for_selector(".heatmap svg")
    shot(page, "step-eval-heatmap")
    for tab in ("code", "lineage", "why", "environment"):
        page.click(f'.tab[data-tab="{tab}"]')
        expect_selected(page, "//models:eval", page.get_attribute('g.node[data-label="//models:eval"]', "data-id"), tab)
    page.click('.tab[data-tab="lineage"]')
    assert "//models:resnet" in page.inner_text("#panel .tab-body")
    page.click(f'#panel a.run-link[data-run="{resnet}"]')
    expect_selected(page, "//models:resnet", resnet, "lineage")

    page.goto(example_ui + "/targets/models:resnet")
    page.wait_for_selector("table.history tbody tr")
    shot(page, "target-history")
    assert errors == []
    context.close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib must reach the loopback server directly whatever proxy the environment names.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
