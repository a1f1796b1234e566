"""The UI at 10,000 steps and on any screen, driven in headless Chromium (Debian's, through
Playwright) against the app serving a real local store. The big builds' records are written
straight through the store API (benchmarks/ui_synth.py): running 10,000 steps would take
minutes and draw the same page. Speed is measured in benchmarks/ui_scale.py, not here.
Screenshots go to ``test-artifacts/ui/``."""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from mlbuild.cache.records import BuildRecord
from mlbuild.cache.store import LocalStore

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "test-artifacts" / "ui"
TIMEOUT_MS = 30_000
MAX_ELEMENTS = 5000

_spec = importlib.util.spec_from_file_location("ui_synth", REPO / "benchmarks" / "ui_synth.py")
assert _spec and _spec.loader
ui_synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ui_synth)


@pytest.fixture
def server(ui_server: str) -> str:
    return ui_server


@pytest.fixture
def big(store: LocalStore) -> BuildRecord:
    record: BuildRecord = ui_synth.write_build(store, 10_000, "chain")
    return record


def open_page(browser: Any, url: str, width: int = 1440, height: int = 900, scheme: str = "light") -> tuple[Any, list[str]]:
    context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(url)
    return page, errors


def shot(page: Any, name: str, full: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)


def elements(page: Any) -> int:
    return int(page.evaluate("document.getElementsByTagName('*').length"))


def scroll_of(page: Any) -> tuple[int, int]:
    left, top = page.evaluate("(() => { const s = document.querySelector('.dag-scroll'); return [s.scrollLeft, s.scrollTop]; })()")
    return int(left), int(top)


def run_of(page: Any) -> str | None:
    return parse_qs(urlsplit(page.url).fragment).get("run", [None])[0]


def test_ten_thousand_steps_page(browser: Any, server: str, big: BuildRecord, store: LocalStore) -> None:
    page, errors = open_page(browser, f"{server}/builds/{big.id}")
    page.wait_for_selector("svg.dag g.group")
    # Packages are group nodes: 100 of them, not 10,000 nodes; no list of every label.
    assert page.locator("svg.dag g.group").count() == 100
    assert page.locator("svg.dag g.node").count() == 0
    assert elements(page) < MAX_ELEMENTS
    assert page.locator("a").count() < 100
    assert "(10000 targets)" in page.inner_text(".build-head .targets")
    assert page.inner_text(".build-head .targets").startswith("//...")
    shot(page, "scale-10000-groups")

    # A group opens on click, in place; its members' statuses show.
    page.click('svg.dag g.group[data-group="//p0042"]')
    page.wait_for_selector('svg.dag g.node[data-label="//p0042:t4250"]')
    assert page.locator('svg.dag g.group[data-group="//p0042"]').get_attribute("aria-expanded") == "true"
    assert page.locator("svg.dag g.node").count() == 100
    assert elements(page) < MAX_ELEMENTS

    # Search jumps to a node in another package: its group opens and it is selected on screen.
    page.fill("input.search", "t9876")
    page.wait_for_selector('.search-results li[data-id]')
    page.keyboard.press("Enter")
    node = page.wait_for_selector('svg.dag g.node.selected[data-label="//p0098:t9876"]')
    box, view = node.bounding_box(), page.locator(".dag-scroll").bounding_box()
    assert box and view
    assert view["x"] <= box["x"] + box["width"] / 2 <= view["x"] + view["width"]
    assert view["y"] <= box["y"] + box["height"] / 2 <= view["y"] + view["height"]
    page.wait_for_selector(f'#panel[data-run="{run_of(page)}"] .step-label')
    assert page.inner_text("#panel .step-label") == "//p0098:t9876"

    # Selecting a neighbour and switching tabs keep the graph where it is: no redraw, no scroll.
    before = scroll_of(page)
    assert before != (0, 0)
    svg = page.evaluate_handle("document.querySelector('svg.dag')")
    page.click('svg.dag g.node[data-label="//p0098:t9877"]', position={"x": 20, "y": 10})
    page.wait_for_selector('#panel .step-label:text-is("//p0098:t9877")')
    page.click('.tab[data-tab="config"]')
    page.wait_for_selector('#panel[data-tab="config"] pre.json')
    assert '"i": 9877' in page.inner_text("#panel .tab-body")
    assert scroll_of(page) == before
    assert page.evaluate("svg => svg === document.querySelector('svg.dag')", svg)  # the same SVG
    assert page.locator("svg.dag g.node.selected").count() == 1
    assert elements(page) < MAX_ELEMENTS
    shot(page, "scale-10000-search")

    # The steps table: sorted, filtered, one page of rows.
    page.click("button.view-table")
    page.wait_for_selector("table.steps tbody tr")
    assert page.locator("table.steps tbody tr").count() == 100
    page.fill("input.step-filter", "t999")
    page.wait_for_function("document.querySelectorAll('table.steps tbody tr').length === 11")
    labels = page.eval_on_selector_all("table.steps tbody a[data-id]", "as => as.map(a => a.textContent)")
    assert labels[:3] == ["//p0009:t999", "//p0099:t9990", "//p0099:t9991"]  # natural order
    page.click("table.steps thead button:text('step')")
    labels = page.eval_on_selector_all("table.steps tbody a[data-id]", "as => as.map(a => a.textContent)")
    assert labels[0] == "//p0099:t9999"
    assert "view=table" in page.url
    page.go_back()  # to the step selected before t9877: the URL and the view agree
    page.wait_for_selector('#panel .step-label:text-is("//p0098:t9876")')
    assert errors == []
    page.context.close()


def test_keyboard_navigation_between_nodes_and_tabs(browser: Any, server: str, store: LocalStore) -> None:
    record = ui_synth.write_build(store, 12, "fanout")
    page, errors = open_page(browser, f"{server}/builds/{record.id}")
    page.wait_for_selector("svg.dag g.node")
    # Natural order in the layer: t1, t2, ..., t10, t11.
    row = page.eval_on_selector_all("svg.dag g.node", """els => els.filter(e => e.dataset.label !== '//p0000:t0')
        .sort((a, b) => a.getBoundingClientRect().x - b.getBoundingClientRect().x).map(e => e.dataset.label)""")
    assert row == [f"//p0000:t{i}" for i in range(1, 12)]
    # One node is in the tab order (roving tabindex).
    assert page.locator('svg.dag [tabindex="0"]').count() == 1
    page.focus("input.search")
    while page.evaluate("document.activeElement.closest('svg.dag') === null"):
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.label") == "//p0000:t0"
    page.keyboard.press("ArrowDown")
    first = page.evaluate("document.activeElement.dataset.label")
    assert first.startswith("//p0000:t") and first != "//p0000:t0"
    page.keyboard.press("ArrowRight")
    second = page.evaluate("document.activeElement.dataset.label")
    assert second != first and int(second.rsplit("t", 1)[1]) == int(first.rsplit("t", 1)[1]) + 1
    page.keyboard.press("ArrowUp")
    assert page.evaluate("document.activeElement.dataset.label") == "//p0000:t0"
    # The focus ring is visible: the focused node's outline differs from an unfocused one's.
    stroke = page.evaluate("getComputedStyle(document.activeElement.querySelector('rect')).strokeWidth")
    assert stroke == "4px"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#panel .step-label:text-is("{first}")')
    assert page.locator(f'svg.dag g.node.selected[data-label="{first}"]').count() == 1
    # Tabs: arrow keys move between them and open them; focus stays on the tab strip.
    page.focus('.tab[aria-selected="true"]')
    assert page.evaluate("document.activeElement.dataset.tab") == "output"
    page.keyboard.press("ArrowRight")
    page.wait_for_selector('#panel[data-tab="code"]')
    assert page.evaluate("document.activeElement.dataset.tab") == "code"
    page.keyboard.press("End")
    page.wait_for_selector('#panel[data-tab="why"]')
    assert page.locator('.tab[tabindex="0"]').count() == 1
    assert page.get_attribute('.tab[tabindex="0"]', "data-tab") == "why"
    # A short key in the URL names the step too.
    key = page.get_attribute('svg.dag g.node[data-label="//p0000:t3"]', "data-id")
    assert key
    page.goto(f"{server}/builds/{record.id}#run={key[:10]}&tab=config")
    page.wait_for_selector('#panel .step-label:text-is("//p0000:t3")')
    page.wait_for_selector("#panel pre.json")
    # The command line is shell-quoted.
    assert page.inner_text(".build-head .command") == shlex.join(record.argv)
    assert errors == []
    page.context.close()


def test_layout_toggle_and_back_agree(browser: Any, server: str, store: LocalStore) -> None:
    record = ui_synth.write_build(store, 5, "chain")
    page, errors = open_page(browser, f"{server}/builds/{record.id}")
    page.wait_for_selector("svg.dag g.node")

    def direction() -> str:
        a = page.locator('svg.dag g.node[data-label="//p0000:t0"]').bounding_box()
        b = page.locator('svg.dag g.node[data-label="//p0000:t1"]').bounding_box()
        assert a and b
        return "lr" if b["x"] > a["x"] + 50 else "tb"

    assert direction() == "tb"
    page.click('svg.dag g.node[data-label="//p0000:t1"]')
    page.click("button.orient-lr")
    assert direction() == "lr" and "orient=lr" in page.url
    page.click('svg.dag g.node[data-label="//p0000:t3"]')
    page.click("button.orient-tb")
    assert direction() == "tb" and "orient" not in page.url
    page.go_back()
    page.wait_for_selector('#panel .step-label:text-is("//p0000:t1")')
    # Back shows what its URL says: t1 was chosen while the layout was left to right.
    assert "orient=lr" in page.url and direction() == "lr"
    assert page.get_attribute("button.orient-lr", "aria-pressed") == "true"
    assert errors == []
    page.context.close()


def test_phone_width_and_dark_theme(browser: Any, server: str, big: BuildRecord, store: LocalStore) -> None:
    small = ui_synth.write_build(store, 8, "fanout")
    pages = [("builds", "/builds", "a.build-link"), ("build-10000", f"/builds/{big.id}", "svg.dag g.group"),
             ("build-step", f"/builds/{small.id}#run=//p0000:t5&tab=config", "#panel pre.json"),
             ("targets", "/targets", "ul.targets a"), ("empty-filter", "/builds?target=nothing-matches", ".empty")]
    page, errors = open_page(browser, server + "/builds", width=390, height=844, scheme="dark")
    for name, path, ready in pages:
        page.goto(server + path)
        page.wait_for_selector(ready)
        width, inner = page.evaluate("[document.scrollingElement.scrollWidth, innerWidth]")
        assert width <= inner, f"{path}: the page scrolls sideways ({width} > {inner})"
        shot(page, f"phone-dark-{name}", full=name == "build-step")
    # The empty filter says so, not "no builds recorded".
    assert "No build matches these filters" in page.inner_text(".empty")
    # On the build page the graph takes the full width, the panel comes below it.
    page.goto(f"{server}/builds/{small.id}#run=//p0000:t5&tab=config")
    page.wait_for_selector("#panel pre.json")
    graph = page.locator(".graph-col").bounding_box()
    panel = page.locator("#panel").bounding_box()
    assert graph and panel
    assert graph["width"] >= 390 - 2 * 12 - 2 and panel["y"] >= graph["y"] + graph["height"]
    # The builds table scrolls within itself.
    page.goto(server + "/builds")
    page.wait_for_selector("a.build-link")
    assert page.evaluate("(() => { const t = document.querySelector('.table-scroll'); return t.scrollWidth > t.clientWidth; })()")
    # Dark theme: a dark background and light text.
    bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    fg = page.evaluate("getComputedStyle(document.body).color")
    assert _luminance(bg) < 0.1 < 0.6 < _luminance(fg)
    assert errors == []
    page.context.close()


def _luminance(css: str) -> float:
    r, g, b = (int(x) / 255 for x in css[css.index("(") + 1:css.index(")")].split(",")[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_unknown_page_is_the_apps_404(browser: Any, server: str) -> None:
    page, errors = open_page(browser, server + "/no/such/page")
    page.wait_for_selector(".not-found h1")
    assert page.inner_text(".not-found h1") == "Not found"
    assert page.title().startswith("Not found")
    page.context.close()
