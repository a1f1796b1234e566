// The DAG of a build as SVG: the server gives each node a layer and an order within it; this
// file turns them into coordinates, top to bottom (or left to right with ?orient=lr).

import { s, seconds } from "./dom.js";

const W = 190, H = 46, GAP_LAYER = 70, GAP_ROW = 22, MARGIN = 16;

export function drawDag(dag, { selected, orient, onSelect }) {
  const byLayer = new Map();
  for (const n of dag.nodes) {
    if (!byLayer.has(n.layer)) byLayer.set(n.layer, []);
    byLayer.get(n.layer).push(n);
  }
  const widest = Math.max(1, ...[...byLayer.values()].map((l) => l.length));
  const lr = orient === "lr";
  const pos = new Map();
  for (const [layer, nodes] of byLayer) {
    nodes.sort((a, b) => a.order - b.order);
    const offset = (widest - nodes.length) / 2;
    nodes.forEach((n, i) => {
      const along = layer * ((lr ? W : H) + GAP_LAYER);
      const across = (i + offset) * ((lr ? H : W) + GAP_ROW);
      pos.set(n.label, lr ? { x: MARGIN + along, y: MARGIN + across } : { x: MARGIN + across, y: MARGIN + along });
    });
  }
  const layers = Math.max(1, dag.layers);
  const bowRoom = 40 + 12 * layers;  // for edges bowed around the nodes they skip
  const width = lr ? 2 * MARGIN + layers * W + (layers - 1) * GAP_LAYER : 2 * MARGIN + widest * W + (widest - 1) * GAP_ROW + bowRoom;
  const height = lr ? 2 * MARGIN + widest * H + (widest - 1) * GAP_ROW + bowRoom : 2 * MARGIN + layers * H + (layers - 1) * GAP_LAYER;

  const layerOf = new Map(dag.nodes.map((n) => [n.label, n.layer]));
  const edges = dag.edges.filter((e) => pos.has(e.source) && pos.has(e.target)).map((e) => {
    const a = pos.get(e.source), b = pos.get(e.target);
    const span = layerOf.get(e.target) - layerOf.get(e.source);
    const sameLine = lr ? a.y === b.y : a.x === b.x;
    let d;
    if (span > 1 && sameLine) {
      // An edge that skips layers along one line would run through the nodes between:
      // it leaves and enters by the side instead, bowed out past them.
      const bow = 40 + 12 * span;
      if (lr) {
        const x1 = a.x + W / 2, y1 = a.y + H, x2 = b.x + W / 2, y2 = b.y + H + 4;
        d = `M${x1},${y1} C${x1},${y1 + bow} ${x2},${y2 + bow} ${x2},${y2}`;
      } else {
        const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x + W + 4, y2 = b.y + H / 2;
        d = `M${x1},${y1} C${x1 + bow},${y1} ${x2 + bow},${y2} ${x2},${y2}`;
      }
    } else if (lr) {
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x - 4, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
      d = `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
    } else {
      const x1 = a.x + W / 2, y1 = a.y + H, x2 = b.x + W / 2, y2 = b.y - 4, my = (y1 + y2) / 2;
      d = `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`;
    }
    return s("path", { d, class: "edge", "marker-end": "url(#arrow)", "data-source": e.source, "data-target": e.target },
      s("title", {}, `${e.source} → ${e.target}${e.input ? " (" + e.input + ")" : ""}`));
  });

  const nodes = dag.nodes.map((n) => {
    const p = pos.get(n.label);
    const [pkg, name] = splitLabel(n.label);
    const sel = selected && (selected === n.id || selected === n.key);
    return s("g", {
      class: `node st-${n.status}${sel ? " selected" : ""}`,
      transform: `translate(${p.x},${p.y})`,
      "data-label": n.label, "data-id": n.id, "data-status": n.status,
      tabindex: 0, role: "button", "aria-label": `${n.label} (${n.status})`,
      onclick: () => onSelect(n),
      onkeydown: (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); onSelect(n); } },
    },
    s("rect", { width: W, height: H, rx: 7, ry: 7 }),
    s("text", { x: 12, y: 19, class: "pkg" }, truncate(pkg, 26)),
    s("text", { x: 12, y: 36, class: "name" }, truncate(name, 18)),
    s("text", { x: W - 10, y: 36, class: "meta", "text-anchor": "end" }, n.status === "executed" || n.status === "failed" ? seconds(n.seconds) : n.status),
    s("title", {}, `${n.label}\n${n.status}${n.key ? "\n" + n.key : ""}`));
  });

  return s("svg", { class: "dag", width, height, viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label": "build graph" },
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))),
    edges, nodes);
}

function splitLabel(label) {
  const i = label.lastIndexOf(":");
  return i < 0 ? ["", label] : [label.slice(0, i), label.slice(i + 1)];
}

function truncate(text, n) {
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

export const LEGEND = [
  ["cached", "cached"], ["remote", "remote hit"], ["executed", "executed"], ["failed", "failed"],
  ["running", "running"], ["pending", "pending"], ["skipped", "skipped"],
];
