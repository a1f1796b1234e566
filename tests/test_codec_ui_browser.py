"""The text-classification example's outputs in the UI, driven in headless Chromium: the PR
curve DataFrame as a paginated table with its statistics, the matplotlib plot as an image,
the random forest as its parameters. Screenshots go to ``test-artifacts/ui/``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import cli
from support.ui import ui_command

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "test-artifacts" / "ui"
TIMEOUT_MS = 20_000


@pytest.fixture
def textclf_ui(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    ws = tmp_path / "textclf"
    shutil.copytree(REPO / "examples" / "textclf", ws, ignore=shutil.ignore_patterns("mlbuild-out", "__pycache__"))
    env = {"MLBUILD_CACHE_DIR": str(tmp_path / "cache")}
    cli.mlbuild(ws, "build", "//models:evaluate", env=env, executor=None)
    with ui_command(ws, tmp_path / "ui.log", env) as url:
        yield url


def _output_of(page: Any, label: str) -> None:
    page.click(f'g.node[data-label="{label}"]')
    page.click('.tab[data-tab="output"]')
    page.wait_for_function("() => !document.querySelector('#panel .tab-body').textContent.startsWith('Loading')",
                           timeout=TIMEOUT_MS)


def test_dataframes_models_and_plots_render_in_the_browser(browser: Any, textclf_ui: str) -> None:
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(textclf_ui + "/")
    page.click("a.build-link")
    page.wait_for_selector('g.node[data-label="//models:evaluate"]')

    _output_of(page, "//models:evaluate")
    frame = page.wait_for_selector(".block.frame")
    assert "pandas.DataFrame" in frame.inner_text()
    header = page.eval_on_selector_all(".block.frame .frame-rows thead th", "els => els.map(e => e.textContent)")
    assert header[1:] == ["precision", "recall", "threshold"]
    stats = page.eval_on_selector_all(".block.frame table.stats tbody tr th", "els => els.map(e => e.textContent)")
    assert stats == ["precision", "recall", "threshold"]
    pager = page.inner_text(".block.frame .pager")
    assert "rows 1–25 of" in pager
    page.click('.block.frame .pager button[aria-label="next rows"]')
    assert "rows 26–50 of" in page.inner_text(".block.frame .pager")
    assert page.locator('figure.block.image img[alt="plot"]').count() == 1
    # The plotly figure, sketched as SVG server side (the page ships no plotting library).
    drawn = page.wait_for_selector('figure.block.image img[alt="interactive"]')
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=drawn)
    assert "avg_prec" in page.inner_text("#panel .tab-body")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "codec-evaluate.png"), full_page=True)

    _output_of(page, "//models:train")
    page.wait_for_selector("table.kv")
    body = page.inner_text("#panel .tab-body")
    assert "sklearn.ensemble._forest.RandomForestClassifier" in body and "n_estimators" in body
    page.screenshot(path=str(SHOTS / "codec-model.png"), full_page=True)
    assert errors == []
    context.close()
