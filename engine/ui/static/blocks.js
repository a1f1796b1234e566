// Rendering the artifact blocks the API returns (see render.py): tables, array summaries,
// histograms, images, heatmaps, text, file lists.

import { bytes, h, num, s } from "./dom.js";

export function renderBlocks(blocks, depth = 0) {
  return blocks.map((b) => renderBlock(b, depth));
}

function renderBlock(b, depth) {
  switch (b.kind) {
    case "section": return section(b, depth);
    case "scalars": return scalars(b);
    case "array": return array(b);
    case "image": return h("figure", { class: "block image" }, h("img", { src: b.src, alt: b.name }), h("figcaption", {}, b.name));
    case "heatmap": return heatmap(b);
    case "text": return text(b);
    case "files": return files(b, depth);
    case "table": return table(b);
    case "note": return h("p", { class: "block note" }, h("b", {}, b.name + ": "), b.text);
    default: return h("p", { class: "note" }, `(${b.kind})`);
  }
}

function section(b, depth) {
  // The top-level section of a value has the output's name, already shown as the heading.
  if (depth === 0) return h("div", { class: "section" }, renderBlocks(b.blocks, depth + 1));
  return h("div", { class: "section nested" }, h("h4", {}, b.name), renderBlocks(b.blocks, depth + 1));
}

function value(v) {
  if (Array.isArray(v) && v.length >= 3 && v.every((x) => typeof x === "number")) {
    return h("div", { class: "series" }, lineChart(v, "values"), h("span", { class: "list muted" }, v.map(num).join(", ")));
  }
  if (Array.isArray(v)) return h("span", { class: "list" }, v.map(num).join(", "));
  if (typeof v === "number") return h("span", { class: "num" }, num(v));
  if (typeof v === "boolean" || v === null) return h("span", { class: "lit" }, String(v));
  return String(v);
}

function scalars(b) {
  return h("table", { class: "block kv" },
    h("tbody", {}, b.rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, value(v))))));
}

// A DataFrame: its dtypes and column statistics, then its rows a page at a time (the server
// sends the first rows; render_codecs.py says how many).
const PAGE_ROWS = 25;

function table(b) {
  const pages = Math.max(1, Math.ceil(b.rows.length / PAGE_ROWS));
  let page = 0;
  const body = h("tbody", {});
  const where = h("span", { class: "muted" });
  const draw = () => {
    body.replaceChildren(...b.rows.slice(page * PAGE_ROWS, (page + 1) * PAGE_ROWS).map((row, i) =>
      h("tr", {}, h("th", {}, b.index[page * PAGE_ROWS + i]), row.map((v) => h("td", { class: typeof v === "number" ? "r" : null }, value(v))))));
    const first = page * PAGE_ROWS + 1, last = Math.min(b.rows.length, (page + 1) * PAGE_ROWS);
    where.textContent = ` rows ${first}–${last} of ${b.total_rows}` + (b.total_rows > b.rows.length ? ` (the first ${b.rows.length} are shown here; download for all)` : "");
  };
  const go = (d) => () => { page = Math.min(pages - 1, Math.max(0, page + d)); draw(); };
  draw();
  const stats = b.stats.map((c) => h("tr", {}, h("th", {}, c.column), h("td", {}, c.dtype), h("td", { class: "r" }, c.nulls),
    ["min", "max", "mean", "std"].map((k) => h("td", { class: "r" }, c[k] === null || c[k] === undefined ? "" : value(c[k])))));
  return h("div", { class: "block frame" },
    h("h4", {}, b.name, h("span", { class: "muted" }, ` ${b.kind_of} (${b.total_rows} × ${b.columns.length})`)),
    h("table", { class: "list compact stats" },
      h("thead", {}, h("tr", {}, ["column", "dtype", "nulls", "min", "max", "mean", "std"].map((t) => h("th", {}, t)))),
      h("tbody", {}, stats)),
    h("div", { class: "frame-rows" },
      h("table", { class: "list compact" },
        h("thead", {}, h("tr", {}, h("th", {}, b.index_name || ""), b.columns.map((c, i) => h("th", { title: b.dtypes[i] }, c)))),
        body)),
    h("div", { class: "pager" },
      h("button", { type: "button", onclick: go(-1), "aria-label": "previous rows" }, "‹"),
      h("button", { type: "button", onclick: go(1), "aria-label": "next rows" }, "›"), where));
}

function array(b) {
  const stats = [["shape", `(${b.shape.join(", ")}${b.shape.length === 1 ? "," : ""})`], ["dtype", b.dtype], ["size", b.size]];
  for (const k of ["min", "max", "mean", "std"]) if (b[k] !== null && b[k] !== undefined) stats.push([k, num(b[k])]);
  return h("div", { class: "block array" },
    h("h4", {}, b.name, h("span", { class: "muted" }, ` array (${b.shape.join("×")}) ${b.dtype}`)),
    h("div", { class: "array-body" },
      h("table", { class: "kv compact" }, h("tbody", {}, stats.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, typeof v === "number" ? num(v) : v))))),
      b.histogram ? histogram(b.histogram) : null,
    ),
    b.series && b.series.length >= 2 ? lineChart(b.series, b.name, b.size) : null,
    b.images.length ? h("div", { class: "thumbs" }, b.images.map((src, i) => h("img", { src, alt: `${b.name}[${i}]`, title: `${b.name}[${i}]` }))) : null,
    b.preview ? h("div", { class: "preview muted" }, "first values: ", b.preview.map(num).join(", "), b.size > b.preview.length ? ", …" : "") : null,
  );
}

function histogram(hist) {
  const W = 240, H = 80, n = hist.counts.length;
  const max = Math.max(1, ...hist.counts);
  const bw = W / n;
  const lo = hist.edges[0], hi = hist.edges[hist.edges.length - 1];
  return h("figure", { class: "hist" },
    s("svg", { width: W, height: H + 16, viewBox: `0 0 ${W} ${H + 16}`, role: "img", "aria-label": "histogram" },
      hist.counts.map((c, i) => {
        const bh = (c / max) * H;
        return s("rect", { x: i * bw + 0.5, y: H - bh, width: Math.max(1, bw - 1), height: bh, class: "bar" },
          s("title", {}, `${num(hist.edges[i])} – ${num(hist.edges[i + 1])}: ${c}`));
      }),
      s("line", { x1: 0, y1: H + 0.5, x2: W, y2: H + 0.5, class: "axis" }),
      s("text", { x: 0, y: H + 13, class: "tick" }, num(lo)),
      s("text", { x: W, y: H + 13, class: "tick", "text-anchor": "end" }, num(hi)),
    ),
  );
}

// The axes of a line chart in a W x H box with margins L, B, T, R: the value range lo..hi on
// the left, the indexes 0..last along the bottom (their labels ``below`` px above its edge).
export function chartAxes({ W, H, L, B, T, R }, lo, hi, last, below) {
  return [
    s("line", { x1: L, y1: H - B + 0.5, x2: W - R, y2: H - B + 0.5, class: "axis" }),
    s("line", { x1: L - 0.5, y1: T, x2: L - 0.5, y2: H - B, class: "axis" }),
    s("text", { x: L - 4, y: T + 8, class: "tick", "text-anchor": "end" }, num(hi)),
    s("text", { x: L - 4, y: H - B, class: "tick", "text-anchor": "end" }, num(lo)),
    s("text", { x: L, y: H - below, class: "tick" }, "0"),
    s("text", { x: W - R, y: H - below, class: "tick", "text-anchor": "end" }, String(last)),
  ];
}

// A line chart of a series (per-epoch losses, a curve), drawn as SVG by the page itself.
export function lineChart(values, name, total = values.length) {
  const W = 320, H = 110, L = 44, B = 18, T = 8, R = 8;
  let lo = Math.min(...values), hi = Math.max(...values);
  if (lo === hi) { lo -= 1; hi += 1; }
  const n = values.length;
  const x = (i) => L + (n === 1 ? 0 : (i / (n - 1)) * (W - L - R));
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  const d = values.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join("");
  const last = values[n - 1];
  return h("figure", { class: "chart" },
    s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": `${name}: line chart of ${n} values from ${num(values[0])} to ${num(last)}` },
      chartAxes({ W, H, L, B, T, R }, lo, hi, total - 1, 4),
      s("path", { d, class: "line" }),
      n <= 60 ? values.map((v, i) => s("circle", { cx: x(i), cy: y(v), r: 2.2, class: "pt" }, s("title", {}, `${i}: ${num(v)}`))) : null),
    h("figcaption", { class: "muted" }, `${total} values, last ${num(last)}${total > n ? ` (every ${Math.ceil(total / n)}th drawn)` : ""}`));
}

function heatmap(b) {
  const n = b.matrix.length;
  const cell = n > 20 ? 14 : n > 10 ? 24 : 34;
  const pad = 28;
  const size = n * cell;
  const cells = [];
  const lo = b.min ?? 0, span = b.max - lo;
  b.matrix.forEach((row, i) => row.forEach((v, j) => {
    const t = span > 0 ? (v - lo) / span : 0;
    const what = b.counts === false ? `row ${i}, column ${j}` : `true ${i}, predicted ${j}`;
    cells.push(s("rect", { x: pad + j * cell, y: pad + i * cell, width: cell - 1, height: cell - 1, fill: heat(t), class: i === j ? "diag" : "" },
      s("title", {}, `${what}: ${num(v)}`)));
    if (cell >= 30) cells.push(s("text", { x: pad + j * cell + cell / 2, y: pad + i * cell + cell / 2 + 4, "text-anchor": "middle", class: t > 0.55 ? "cell light" : "cell" }, num(v)));
  }));
  const ticks = [];
  for (let k = 0; k < n; k++) {
    ticks.push(s("text", { x: pad + k * cell + cell / 2, y: pad - 6, "text-anchor": "middle", class: "tick" }, k));
    ticks.push(s("text", { x: pad - 6, y: pad + k * cell + cell / 2 + 4, "text-anchor": "end", class: "tick" }, k));
  }
  return h("figure", { class: "block heatmap" },
    h("h4", {}, b.name, h("span", { class: "muted" }, ` ${n}×${n}` + (b.counts === false ? `, ${num(lo)} to ${num(b.max)}` : ", rows: true, columns: predicted"))),
    s("svg", { viewBox: `0 0 ${pad + size + 4} ${pad + size + 4}`, width: pad + size + 4, height: pad + size + 4, role: "img", "aria-label": b.name }, cells, ticks));
}

function heat(t) {
  // white -> deep blue
  const r = Math.round(255 - t * (255 - 23));
  const g = Math.round(255 - t * (255 - 78));
  const bl = Math.round(255 - t * (255 - 156));
  return `rgb(${r},${g},${bl})`;
}

function text(b) {
  return h("div", { class: "block text" },
    b.name ? h("h4", {}, b.name) : null,
    h("pre", { class: b.language }, b.text),
    b.truncated ? h("p", { class: "muted" }, "(truncated: download the file for all of it)") : null);
}

function files(b, depth) {
  return h("div", { class: "block files" },
    h("div", { class: "table-scroll" }, h("table", { class: "list" },
      h("thead", {}, h("tr", {}, h("th", {}, "file"), h("th", { class: "r" }, "size"), h("th", {}, ""))),
      h("tbody", {}, b.files.map((f) => h("tr", {},
        h("td", { class: "mono ellipsis-cell", title: f.path }, f.path),
        h("td", { class: "r" }, bytes(f.size)),
        h("td", {}, h("a", { href: f.url, download: f.path.split("/").pop() }, "download"))))),
      h("tfoot", {}, h("tr", {}, h("td", {}, b.files.length === 1 ? "1 file" : `${b.files.length} files`), h("td", { class: "r" }, bytes(b.total)), h("td", {}))))),
    b.rendered.length ? h("div", { class: "rendered" }, renderBlocks(b.rendered, depth + 1)) : null);
}
