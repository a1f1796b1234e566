"""The UI with a 10,000-step build, measured in headless Chromium (Debian's, through Playwright).

    python benchmarks/ui_scale.py [--steps 10000] [--shape chain|fanout|both] [--repeat 3]

Writes the build's records straight into a fresh cache (benchmarks/ui_synth.py), serves it with
the UI's app in this process, and prints, per shape: the time from navigation to the graph
drawn (cold: the server lays it out; warm: its layout cached), the DOM's element count,
selecting a step and switching a tab (from the click to the panel showing it), a search
jumping to a node, and the size of the build's JSON. Medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ui_synth import write_build  # noqa: E402

from mlbuild.cache.store import LocalStore  # noqa: E402
from mlbuild.engine.ui.server import create_app  # noqa: E402

CHROMIUM = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

MEASURE_CLICK = """async ([selector, ready]) => {
  const t0 = performance.now();
  document.querySelector(selector).dispatchEvent(new MouseEvent("click", {bubbles: true}));
  while (!document.querySelector(ready)) await new Promise(requestAnimationFrame);
  await new Promise(requestAnimationFrame);
  return performance.now() - t0;
}"""


def serve(store: LocalStore) -> tuple[str, object]:
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = make_server("127.0.0.1", 0, create_app(store), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


def measure(browser: object, url: str, build_id: str, shape: str, n: int) -> dict[str, float]:
    page = browser.new_page(viewport={"width": 1440, "height": 900})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    t0 = time.perf_counter()
    page.goto(f"{url}/builds/{build_id}")
    page.wait_for_selector("svg.dag g.group", timeout=60_000)
    loaded = time.perf_counter() - t0
    elements = page.evaluate("document.getElementsByTagName('*').length")
    # Open a group, then select one of its steps: click to panel shown.
    page.click('svg.dag g.group[data-group="//p0003"]')
    page.wait_for_selector('svg.dag g.node[data-label="//p0003:t301"]')
    select_ms = page.evaluate(MEASURE_CLICK, ['svg.dag g.node[data-label="//p0003:t301"]',
                                              '#panel[data-run] .tab[aria-selected="true"]'])
    page.wait_for_function("() => !document.querySelector('#panel .tab-body .loading')")
    tab_ms = page.evaluate(MEASURE_CLICK, ['.tab[data-tab="config"]', '#panel[data-tab="config"] .tab-body pre, #panel[data-tab="config"] .tab-body p:not(.loading)'])
    page.fill("input.search", f"t{n - 7}")
    t1 = time.perf_counter()
    page.keyboard.press("Enter")
    page.wait_for_selector(f'svg.dag g.node.selected[data-label="{_label(n - 7)}"]')
    search_s = time.perf_counter() - t1
    most = page.evaluate("document.getElementsByTagName('*').length")
    page.close()
    if errors:
        raise SystemExit(f"page errors: {errors}")
    return {"graph_visible_s": loaded, "elements": elements, "elements_after_expand": most,
            "select_ms": select_ms, "tab_ms": tab_ms, "search_jump_s": search_s}


def _label(i: int) -> str:
    return f"//p{i // 100:04d}:t{i}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--shape", choices=["chain", "fanout", "both"], default="both")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    shapes = ["chain", "fanout"] if args.shape == "both" else [args.shape]
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStore(Path(tmp) / "cache")
        ids = {}
        for shape in shapes:
            t = time.perf_counter()
            ids[shape] = write_build(store, args.steps, shape).id  # type: ignore[arg-type]
            print(f"{shape}: wrote {args.steps} steps' records in {time.perf_counter() - t:.1f}s")
        url, server = serve(store)
        import urllib.request

        for shape in shapes:
            with urllib.request.urlopen(f"{url}/api/builds/{ids[shape]}") as resp:
                print(f"{shape}: build JSON {len(resp.read()) / 1e6:.2f} MB")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM)
            for shape in shapes:
                from mlbuild.engine.ui import dag

                dag._dag_cache.clear()
                dag._layout_cache.clear()
                cold = measure(browser, url, ids[shape], shape, args.steps)["graph_visible_s"]
                runs = [measure(browser, url, ids[shape], shape, args.steps) for _ in range(args.repeat)]
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                print(f"{shape} ({args.steps} steps): graph visible {cold:.2f}s cold, {med['graph_visible_s']:.2f}s warm; "
                      f"select a step {med['select_ms']:.0f} ms; switch tab {med['tab_ms']:.0f} ms; "
                      f"search+jump {med['search_jump_s'] * 1000:.0f} ms; DOM elements {med['elements']:.0f} "
                      f"({med['elements_after_expand']:.0f} with groups open)")
            browser.close()
        server.shutdown()  # type: ignore[attr-defined]
        store.close()


if __name__ == "__main__":
    main()
