"""Line charts of series (per-epoch lists a target returned, plot files it marked) overlaid
across builds, as one self-contained HTML file: inline SVG, no script, no CDN, so the file opens
offline and in a CI artifact viewer."""

from __future__ import annotations

import html
import math

from mlbuild.engine.inspect.metrics import BuildView, natural_key

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 560, 300, 56, 16, 16, 36


def overlaid(views: list[BuildView]) -> dict[str, dict[str, list[float]]]:
    """``"//pkg:t train_loss"`` -> build id -> series, for every series any build has."""
    charts: dict[str, dict[str, list[float]]] = {}
    for view in views:
        for label, t in view.targets.items():
            for name, values in t.series.items():
                charts.setdefault(f"{label} {name}", {})[view.id] = values
    return dict(sorted(charts.items(), key=lambda kv: natural_key(kv[0])))


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi == lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def chart_svg(title: str, lines: dict[str, list[float]]) -> str:
    """One chart: x is the index (epoch/step), y the value; one polyline per build."""
    finite = [v for vs in lines.values() for v in vs if math.isfinite(v)]
    if not finite:
        return f"<figure><figcaption>{html.escape(title)}: no finite values</figcaption></figure>"
    lo, hi = min(finite), max(finite)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    n = max(len(vs) for vs in lines.values())
    x_span = max(1, n - 1)

    def x(i: int) -> float:
        return PAD_L + (W - PAD_L - PAD_R) * i / x_span

    def y(v: float) -> float:
        return PAD_T + (H - PAD_T - PAD_B) * (1 - (v - lo) / (hi - lo))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
             f'aria-label="{html.escape(title)}">',
             f'<rect x="{PAD_L}" y="{PAD_T}" width="{W - PAD_L - PAD_R}" height="{H - PAD_T - PAD_B}" fill="none" stroke="#999"/>']
    for t in _ticks(lo, hi):
        parts.append(f'<line x1="{PAD_L - 4}" x2="{W - PAD_R}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#ddd"/>'
                     f'<text x="{PAD_L - 6}" y="{y(t) + 4:.1f}" text-anchor="end" font-size="11">{t:.4g}</text>')
    for t in _ticks(0, x_span):
        if float(t).is_integer():
            parts.append(f'<text x="{x(int(t)):.1f}" y="{H - PAD_B + 16}" text-anchor="middle" font-size="11">{int(t)}</text>')
    for i, (build, values) in enumerate(lines.items()):
        color = COLORS[i % len(COLORS)]
        points = " ".join(f"{x(j):.1f},{y(v):.1f}" for j, v in enumerate(values) if math.isfinite(v))
        parts.append(f'<polyline class="series" data-build="{html.escape(build)}" fill="none" stroke="{color}" '
                     f'stroke-width="2" points="{points}"/>')
    parts.append("</svg>")
    legend = " ".join(f'<span style="color:{COLORS[i % len(COLORS)]}">&#9632; {html.escape(b)}</span>'
                      for i, b in enumerate(lines))
    return f"<figure><figcaption>{html.escape(title)}</figcaption>{''.join(parts)}<div>{legend}</div></figure>"


def html_page(views: list[BuildView]) -> str:
    charts = overlaid(views)
    body = "\n".join(chart_svg(t, lines) for t, lines in charts.items()) or "<p>No series in these builds.</p>"
    builds = ", ".join(html.escape(v.id) for v in views)
    return (
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>mlbuild plots: " + builds + "</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:1.5em}figure{display:inline-block;margin:0 1.5em 1.5em 0}"
        "figcaption{font-weight:600;margin-bottom:.3em}svg{max-width:100%;height:auto}"
        "@media (prefers-color-scheme: dark){body{background:#111;color:#ddd}text{fill:#ddd}}</style>"
        f"</head><body><h1>Plots of builds {builds}</h1>\n{body}\n</body></html>\n"
    )
