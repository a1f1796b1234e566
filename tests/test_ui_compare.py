"""The compare view and metric trends (issue 14), from the API and in headless Chromium:
builds selected in the list open /compare?builds=A,B with the params that differ, metrics side
by side with deltas, overlaid series, and per step "same key" / "different key" linking why."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest

from mlbuild.cache.store import LocalStore

from support.cli import mlbuild
from support.ui import serve_ui

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "test-artifacts" / "ui"
TIMEOUT_MS = 20_000


@pytest.fixture
def two_builds(tmp_path: Path, tmp_cache_dir: Path) -> Iterator[tuple[str, str, str, Path]]:
    """examples/sweep built with lr 0.1 then 0.5, and the UI serving its cache."""
    ws = tmp_path / "sweep"
    shutil.copytree(REPO / "examples" / "sweep", ws, ignore=shutil.ignore_patterns("mlbuild-out"))
    a = mlbuild(ws, "build", "//model:evaluate", "--json", "-q").json()["build_id"]
    b = mlbuild(ws, "build", "//model:evaluate", "--json", "-q", "--set", "//model:train.lr=0.5").json()["build_id"]
    store = LocalStore(tmp_cache_dir)
    with serve_ui(store) as url:
        yield url, a, b, ws
    store.close()


def get(url: str) -> Any:
    with urlopen(url, timeout=30) as resp:
        return json.load(resp)


def test_compare_api_names_params_metrics_series_and_steps(two_builds: tuple[str, str, str, Path]) -> None:
    url, a, b, ws = two_builds
    data = get(f"{url}/api/compare?builds={a},{b}")
    assert [x["id"] for x in data["builds"]] == [a, b]
    assert [(p["name"], p["values"]) for p in data["params"]] == [("//model:train.lr", [0.1, 0.5])]
    new_metrics = json.loads((ws / "mlbuild-out/model/evaluate/metrics.json").read_text())
    metrics = {m["name"]: m for m in data["metrics"]}
    for name, value in new_metrics.items():
        row = metrics[f"//model:evaluate {name}"]
        assert row["values"][1] == value
        assert row["delta"] == pytest.approx(value - row["values"][0])
    assert set(data["series"]["//model:train train_loss"]) == {a, b}
    steps = {s["label"]: s for s in data["steps"]}
    assert steps["//data:points"]["same"] and not steps["//model:train"]["same"] and not steps["//model:evaluate"]["same"]
    with pytest.raises(Exception, match="400"):
        get(f"{url}/api/compare?builds={a}")
    trend = get(f"{url}/api/trend?target=//model:evaluate")
    assert [p["build"] for p in trend["points"]] == [a, b]
    assert trend["points"][1]["metrics"] == new_metrics


def test_select_two_builds_and_compare_in_the_browser(two_builds: tuple[str, str, str, Path], browser: Any) -> None:
    url, a, b, _ = two_builds
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/builds")
    page.wait_for_selector(f'tr[data-build="{a}"] input.pick', timeout=TIMEOUT_MS)
    assert page.is_disabled("button.compare-selected")
    page.check(f'tr[data-build="{a}"] input.pick')
    page.check(f'tr[data-build="{b}"] input.pick')
    page.click("button.compare-selected")
    page.wait_for_selector(".compare-steps table", timeout=TIMEOUT_MS)
    assert page.url.endswith(f"/compare?builds={a}%2C{b}")
    params = page.locator(".compare-params tbody tr").all_inner_texts()
    assert len(params) == 1 and params[0].split("\t")[:3] == ["//model:train.lr", "0.1", "0.5"]
    charts = page.locator(".compare-series figure")
    assert charts.count() >= 2
    assert sorted(p.get_attribute("data-build") or "" for p in charts.first.locator("path.series").all()) == sorted([a, b])
    assert page.locator('.compare-steps tr[data-label="//data:points"] .same-key').count() == 1
    why = page.locator('.compare-steps tr[data-label="//model:train"] a.different-key')
    assert "tab=why" in (why.get_attribute("href") or "")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "compare.png"), full_page=True)
    # the same URL in a fresh page is the same view (deep link)
    again = browser.new_page()
    again.goto(page.url)
    again.wait_for_selector(".compare-params tbody tr", timeout=TIMEOUT_MS)
    assert again.locator(".compare-params tbody tr").count() == 1
    # a target's history shows its metrics as trend charts
    again.goto(f"{url}/targets/model:evaluate")
    again.wait_for_selector(".trends figure", timeout=TIMEOUT_MS)
    assert again.locator(".trends figure").count() == 2  # accuracy and log_loss
    again.screenshot(path=str(SHOTS / "target-trends.png"), full_page=True)
    page.close()
    again.close()
