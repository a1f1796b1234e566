// The compare view (/compare?builds=A,B[,C…]): params that differ, metrics side by side with
// their change, series overlaid, and per step "same key" / "different key" with a link to why.
// Everything a person would share is in the URL; the page only reads /api/compare.

import { chartAxes } from "./blocks.js";
import { api, buildHref, errorBox, h, num, s, short, when } from "./dom.js";

const COLORS = ["#2f6fde", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

export async function comparePage(root) {
  const q = new URLSearchParams(location.search);
  const ids = (q.get("builds") || "").split(",").filter(Boolean);
  root.replaceChildren(h("h1", {}, "Compare builds"), h("p", { class: "muted" }, "Loading…"));
  let data;
  try {
    data = await api("/api/compare?" + new URLSearchParams({ builds: ids.join(","), ...(q.get("all") ? { all: "1" } : {}) }));
  } catch (err) {
    root.replaceChildren(h("h1", {}, "Compare builds"), errorBox(err),
      h("p", {}, "Select two or more builds in ", h("a", { href: "/builds" }, "the builds list"), " and press Compare."));
    return;
  }
  const builds = data.builds;
  const head = (first) => h("thead", {}, h("tr", {}, first.map((t) => h("th", { scope: "col" }, t)),
    builds.map((b, i) => h("th", { scope: "col" }, swatch(i), h("a", { href: buildHref(b.id), class: "mono" }, b.id),
      b.name ? h("div", { class: "muted" }, b.name) : null)),
    builds.length > 1 ? h("th", { scope: "col" }, "change") : null));
  const showAll = h("a", { href: "/compare?" + new URLSearchParams({ builds: ids.join(","), ...(q.get("all") ? {} : { all: "1" }) }) },
    q.get("all") ? "only params that differ" : "all params");
  root.replaceChildren(
    h("div", { class: "page-head" }, h("h1", {}, `Compare ${builds.length} builds`), showAll),
    h("section", { class: "compare-params" }, h("h2", {}, "Params"),
      data.params.length
        ? h("div", { class: "table-scroll" }, h("table", { class: "list compare" }, head(["param"]),
            h("tbody", {}, data.params.map((r) => h("tr", { class: r.same ? "" : "differs" },
              h("td", { class: "mono ellipsis-cell", title: r.name }, r.name),
              r.values.map((v) => h("td", { class: "mono" }, fmt(v))),
              h("td", { class: "mono" }, change(r)))))))
        : h("p", { class: "muted" }, "No param differs between these builds.")),
    h("section", { class: "compare-metrics" }, h("h2", {}, "Metrics"),
      data.metrics.length
        ? h("div", { class: "table-scroll" }, h("table", { class: "list compare" }, head(["target", "metric"]),
            h("tbody", {}, data.metrics.map((r) => {
              const [label, ...rest] = r.name.split(" ");
              return h("tr", { class: r.same ? "" : "differs" },
                h("td", { class: "mono ellipsis-cell", title: label }, label),
                h("td", { class: "mono" }, rest.join(" ")),
                r.values.map((v) => h("td", { class: "mono" }, fmt(v))),
                h("td", { class: "mono" }, change(r)));
            }))))
        : h("p", { class: "muted" }, "These builds' targets return no numbers and mark no metrics files.")),
    h("section", { class: "compare-series" }, h("h2", {}, "Series"),
      Object.keys(data.series).length
        ? h("div", { class: "charts" }, Object.entries(data.series).map(([title, lines]) => overlayChart(title, lines, builds)))
        : h("p", { class: "muted" }, "No series (per-epoch lists, plot files) in these builds.")),
    h("section", { class: "compare-steps" }, h("h2", {}, "Steps"),
      h("div", { class: "table-scroll" }, h("table", { class: "list compare" }, head(["step"]),
        h("tbody", {}, data.steps.map((st) => h("tr", { class: st.same ? "" : "differs", "data-label": st.label },
          h("td", { class: "mono ellipsis-cell", title: st.label }, st.label),
          st.keys.map((k, i) => h("td", { class: "mono" }, k ? h("a", { href: buildHref(builds[i].id, k), title: k }, short(k)) : "—")),
          h("td", {}, st.same ? h("span", { class: "muted same-key" }, "same key")
            : h("a", { class: "different-key", href: whyHref(builds, st) }, "different key: why")))))))),
  );
  document.title = `Compare ${builds.map((b) => b.id).join(", ")} · mlbuild`;
}

function whyHref(builds, step) {
  // The why tab of the step in the last build that ran it: what changed in its key.
  for (let i = builds.length - 1; i >= 0; i--) if (step.keys[i]) return buildHref(builds[i].id, step.keys[i], "why");
  return "#";
}

function swatch(i) {
  return s("svg", { width: 10, height: 10, class: "swatch", "aria-hidden": "true" }, s("rect", { width: 10, height: 10, fill: COLORS[i % COLORS.length] }));
}

function fmt(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") return num(v);
  return typeof v === "string" ? v : JSON.stringify(v);
}

function change(r) {
  if (r.delta === null || r.delta === undefined) return r.same ? "" : "changed";
  if (r.delta === 0) return "0";
  const first = r.values[0];
  const rel = typeof first === "number" && first !== 0 ? ` (${r.delta / Math.abs(first) >= 0 ? "+" : ""}${(100 * r.delta / Math.abs(first)).toFixed(1)}%)` : "";
  return (r.delta > 0 ? "+" : "") + num(r.delta) + rel;
}

// Several series on one chart, one colour per build (the same colours as the table headers).
export function overlayChart(title, lines, builds) {
  const W = 420, H = 180, L = 48, B = 20, T = 10, R = 10;
  const all = Object.values(lines).flat().filter(Number.isFinite);
  let lo = Math.min(...all), hi = Math.max(...all);
  if (!all.length) { lo = 0; hi = 1; }
  if (lo === hi) { lo -= 1; hi += 1; }
  const n = Math.max(...Object.values(lines).map((v) => v.length), 1);
  const x = (i) => L + (n === 1 ? 0 : (i / (n - 1)) * (W - L - R));
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  const order = builds.map((b) => b.id);
  const paths = Object.entries(lines).map(([id, values]) => {
    const i = Math.max(0, order.indexOf(id));
    const d = values.map((v, j) => `${j ? "L" : "M"}${x(j).toFixed(1)},${y(v).toFixed(1)}`).join("");
    return s("path", { d, class: "series", "data-build": id, fill: "none", stroke: COLORS[i % COLORS.length], "stroke-width": 2 },
      s("title", {}, `${id}: ${values.length} values, last ${num(values[values.length - 1])}`));
  });
  return h("figure", { class: "chart overlay" },
    h("figcaption", { class: "mono" }, title),
    s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": `${title}: ${Object.keys(lines).length} builds overlaid` },
      chartAxes({ W, H, L, B, T, R }, lo, hi, n - 1, 5),
      paths));
}

// A target's metrics over its builds (oldest first), one chart per metric, for its history page.
export function trendCharts(trend) {
  const names = [...new Set(trend.points.flatMap((p) => Object.keys(p.metrics)))].sort();
  if (!names.length || trend.points.length < 2) return null;
  return h("section", { class: "trends" }, h("h2", {}, "Metrics over its builds"),
    h("div", { class: "charts" }, names.map((name) => {
      const pts = trend.points.filter((p) => typeof p.metrics[name] === "number");
      const chart = overlayChart(name, { trend: pts.map((p) => p.metrics[name]) }, [{ id: "trend" }]);
      chart.append(h("figcaption", { class: "muted" }, `${pts.length} builds, ${when(pts[0].started)} to ${when(pts[pts.length - 1].started)}`));
      return chart;
    })));
}
