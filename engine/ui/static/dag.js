// The DAG of a build as SVG, drawn once and then updated in place.
//
// The server gives each node a layer and an order (docs/ui-api.md); above a few hundred nodes
// it also gives groups (packages) with their own layers and orders, and each node's place
// inside its group. Here those become coordinates, top to bottom (or left to right).
// Selection and status changes touch only the classes and texts of the nodes concerned; the
// SVG is built again only when the graph's shape changes (a group expanded or collapsed, the
// orientation switched), and the scroll position survives that too.
//
// The viewport is a scrolling box: zoom scales the SVG, pan is its scroll (drag to pan),
// fit picks the zoom that shows everything. Keyboard: one item is in the tab order (roving
// tabindex); arrow keys move to the nearest item that way; Enter selects a step or opens a group.

import { h, naturalCompare, s, seconds } from "./dom.js";

const W = 190, H = 46, GAP_LAYER = 64, GAP_ROW = 22, MARGIN = 16, PAD = 12, HEAD = 26;
const MAX_SHOWN_MEMBERS = 450;  // members of expanded groups on screen at once (DOM budget)

export const LEGEND = [
  ["cached", "cached"], ["remote", "remote hit"], ["executed", "executed"], ["failed", "failed"],
  ["running", "running"], ["pending", "pending"], ["skipped", "skipped"],
];
const STATUS_ORDER = LEGEND.map(([k]) => k);

function splitLabel(label) {
  const i = label.lastIndexOf(":");
  return i < 0 ? ["", label] : [label.slice(0, i), label.slice(i + 1)];
}

function truncate(text, n) {
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

function metaText(n) {
  return n.status === "executed" || n.status === "failed" ? seconds(n.seconds || 0) : n.status;
}

export class DagView {
  // onSelect(node) when a step is chosen; orient "tb" | "lr".
  constructor(container, { onSelect, orient = "tb" }) {
    this.onSelect = onSelect;
    this.orient = orient;
    this.zoom = 1;
    this.expanded = [];  // group indexes, oldest first
    this.selected = null;  // node id
    this.items = new Map();  // item id ("n:<label>" or "g:<index>") -> { el, x, y, w, h, node?, group? }
    this.scroller = h("div", { class: "dag-scroll", tabindex: -1 });
    this.tip = h("div", { class: "dag-tip", role: "tooltip", hidden: true });
    container.replaceChildren(this.scroller, this.tip);
    this._wireInput();
  }

  // Give the view a (new or re-read) DAG. Only a new shape builds the SVG again.
  setDag(dag) {
    const first = !this.dag;
    const shape = this._shapeOf(dag);
    this.dag = dag;
    this.nodeById = new Map();
    this.nodeByLabel = new Map();
    for (const n of dag.nodes) {
      this.nodeById.set(n.id, n);
      if (n.key) this.nodeById.set(n.key, n);
      this.nodeByLabel.set(n.label, n);
    }
    this.grouped = dag.groups && dag.groups.length > 0;
    if (shape !== this.shape) {
      this.shape = shape;
      this._render(first);
    } else {
      this._updateStatuses();
    }
  }

  _shapeOf(dag) {
    const g = dag.groups || [];
    return `${dag.nodes.length}|${dag.edges.length}|${g.length}|${dag.nodes.map((n) => n.label).join(",")}`;
  }

  nodeFor(run) {
    if (!run || !this.dag) return null;
    const exact = this.nodeById.get(run) || this.nodeByLabel.get(run);
    if (exact) return exact;
    // A short key, as the page shows them: a unique prefix of one node's key.
    if (/^[0-9a-f]{6,31}$/.test(run)) {
      const hits = this.dag.nodes.filter((n) => n.key && n.key.startsWith(run));
      if (hits.length === 1) return hits[0];
    }
    return null;
  }

  // -- layout (coordinates only; layers and orders come from the server) --------------------

  _place() {
    const lr = this.orient === "lr";
    const dag = this.dag;
    const items = [];  // { id, layer, order, along, across, node?, group?, members? }
    const nodeAlong = lr ? W : H, nodeAcross = lr ? H : W;
    if (!this.grouped) {
      for (const n of dag.nodes) items.push({ id: "n:" + n.label, layer: n.layer || 0, order: n.order || 0, along: nodeAlong, across: nodeAcross, node: n });
    } else {
      const members = new Map();
      for (const n of dag.nodes) {
        const g = n.group ?? -1;
        if (!members.has(g)) members.set(g, []);
        members.get(g).push(n);
      }
      dag.groups.forEach((g, i) => {
        const open = this.expanded.includes(i);
        const it = { id: "g:" + i, layer: g.layer, order: g.order, group: g, index: i, open, members: members.get(i) || [] };
        if (open) {
          it.along = HEAD + 2 * PAD + g.layers * nodeAlong + (g.layers - 1) * GAP_LAYER;
          it.across = 2 * PAD + g.width * nodeAcross + (g.width - 1) * GAP_ROW;
        } else {
          it.along = nodeAlong;
          it.across = nodeAcross;
        }
        items.push(it);
      });
    }
    const byLayer = new Map();
    for (const it of items) {
      if (!byLayer.has(it.layer)) byLayer.set(it.layer, []);
      byLayer.get(it.layer).push(it);
    }
    const layers = [...byLayer.keys()].sort((a, b) => a - b);
    const rowSize = new Map();
    let widest = 0;
    for (const l of layers) {
      const row = byLayer.get(l).sort((a, b) => a.order - b.order);
      const size = row.reduce((acc, it) => acc + it.across, 0) + (row.length - 1) * GAP_ROW;
      rowSize.set(l, size);
      widest = Math.max(widest, size);
    }
    let along = MARGIN;
    const placed = [];
    for (const l of layers) {
      const row = byLayer.get(l);
      const thick = Math.max(...row.map((it) => it.along));
      let across = MARGIN + (widest - rowSize.get(l)) / 2;
      for (const it of row) {
        const a = along + (thick - it.along) / 2 * 0;  // items of a layer share its top edge
        it.x = lr ? a : across;
        it.y = lr ? across : a;
        it.w = lr ? it.along : it.across;
        it.h = lr ? it.across : it.along;
        across += it.across + GAP_ROW;
        placed.push(it);
      }
      along += thick + GAP_LAYER;
    }
    // Members of open groups, inside their group's box.
    for (const it of placed.filter((x) => x.open)) {
      const g = it.group;
      const rows = new Map();
      for (const n of it.members) rows.set(n.layer || 0, (rows.get(n.layer || 0) || 0) + 1);
      for (const n of it.members) {
        const inRow = rows.get(n.layer || 0);
        const offset = (g.width - inRow) / 2;
        const a = PAD + HEAD + (n.layer || 0) * (nodeAlong + GAP_LAYER);
        const c = PAD + ((n.order || 0) + offset) * (nodeAcross + GAP_ROW);
        placed.push({ id: "n:" + n.label, node: n, parent: it, x: it.x + (lr ? a : c), y: it.y + (lr ? c : a), w: W, h: H });
      }
    }
    const bow = 40;
    this.width = (lr ? along - GAP_LAYER : widest) + 2 * MARGIN + (lr ? 0 : bow);
    this.height = (lr ? widest : along - GAP_LAYER) + 2 * MARGIN + (lr ? bow : 0);
    return placed;
  }

  // -- drawing --------------------------------------------------------------------------------

  _render(first) {
    const keep = first ? null : { left: this.scroller.scrollLeft, top: this.scroller.scrollTop };
    const placed = this._place();
    this.items = new Map(placed.map((it) => [it.id, it]));
    const lr = this.orient === "lr";
    const visible = (label) => {
      if (this.items.has("n:" + label)) return "n:" + label;
      const n = this.nodeByLabel.get(label);
      return n && n.group !== undefined && n.group >= 0 ? "g:" + n.group : null;
    };
    const seen = new Set();
    const edges = [];
    for (const e of this.dag.edges) {
      const a = visible(e.source), b = visible(e.target);
      if (!a || !b || a === b) continue;
      const k = a + "\u0000" + b;
      if (seen.has(k)) continue;
      seen.add(k);
      edges.push(this._edge(this.items.get(a), this.items.get(b), lr));
    }
    const groupEls = [], nodeEls = [];
    for (const it of placed) {
      if (it.group) groupEls.push(this._groupEl(it));
      else nodeEls.push(this._nodeEl(it));
    }
    this.svg = s("svg", { class: "dag", role: "group", "aria-label": "build graph", viewBox: `0 0 ${this.width} ${this.height}` },
      s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))),
      groupEls, s("g", { class: "edges" }, edges), nodeEls);
    this._applyZoom();
    this.scroller.replaceChildren(this.svg);
    this._updateStatuses();
    this._markSelected();
    this._roving(null);
    if (keep) {
      this.scroller.scrollLeft = keep.left;
      this.scroller.scrollTop = keep.top;
    }
  }

  _edge(a, b, lr) {
    const ax = a.x + a.w / 2, ay = a.y + a.h / 2, bx = b.x + b.w / 2, by = b.y + b.h / 2;
    let d;
    if (lr) {
      const x1 = a.x + a.w, y1 = ay, x2 = b.x - 4, y2 = by;
      if (x2 <= x1 + 4 && Math.abs(y1 - y2) < 1) d = `M${ax},${a.y + a.h} C${ax},${a.y + a.h + 40} ${bx},${b.y + b.h + 40} ${bx},${b.y + b.h + 4}`;
      else { const mx = (x1 + x2) / 2; d = `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`; }
    } else {
      const x1 = ax, y1 = a.y + a.h, x2 = bx, y2 = b.y - 4;
      const skips = Math.abs(x1 - x2) < 1 && y2 - y1 > GAP_LAYER + 1;
      if (skips) {
        // An edge that skips layers along one line would run through the nodes between:
        // it leaves and enters by the side instead, bowed out past them.
        const bow = 30 + Math.min(60, (y2 - y1) / 40);
        d = `M${a.x + a.w},${ay} C${a.x + a.w + bow},${ay} ${b.x + b.w + 4 + bow},${by} ${b.x + b.w + 4},${by}`;
      } else { const my = (y1 + y2) / 2; d = `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`; }
    }
    return s("path", { d, class: "edge", "marker-end": "url(#arrow)" });
  }

  _nodeEl(it) {
    const n = it.node;
    const [pkg, name] = splitLabel(n.label);
    const el = s("g", {
      class: "node", transform: `translate(${it.x},${it.y})`, "data-item": it.id,
      "data-label": n.label, "data-id": n.id, tabindex: -1, role: "button",
    },
    s("rect", { width: W, height: H, rx: 7, ry: 7 }),
    s("text", { x: 12, y: 19, class: "pkg" }, truncate(pkg, 27)),
    s("text", { x: 12, y: 36, class: "name" }, truncate(name, 18)),
    s("text", { x: W - 10, y: 36, class: "meta", "text-anchor": "end" }, ""));
    it.el = el;
    it.meta = el.lastChild;
    return el;
  }

  _groupEl(it) {
    const g = it.group;
    const el = s("g", {
      class: `group${it.open ? " open" : ""}`, transform: `translate(${it.x},${it.y})`, "data-item": it.id,
      "data-group": g.id, tabindex: -1, role: "button", "aria-expanded": it.open ? "true" : "false",
    },
    s("rect", { width: it.w, height: it.h, rx: 9, ry: 9, class: "box" }),
    s("text", { x: 12, y: it.open ? 18 : 19, class: "name" }, truncate(g.label, it.open ? 60 : 24)),
    s("text", { x: it.open ? it.w - 10 : 12, y: it.open ? 18 : 36, class: "meta", "text-anchor": it.open ? "end" : "start" }, ""),
    s("g", { class: "bar", transform: `translate(${it.open ? 0 : 0},${it.open ? -3 : H - 6})` }));
    it.el = el;
    it.meta = el.childNodes[2];
    it.bar = el.childNodes[3];
    return el;
  }

  _updateStatuses() {
    const counts = new Map();
    for (const it of this.items.values()) {
      if (!it.node) continue;
      const n = this.nodeByLabel.get(it.node.label) || it.node;
      it.node = n;
      const cls = `node st-${n.status}`;
      if (it.el.getAttribute("class").replace(" selected", "") !== cls) {
        it.el.setAttribute("class", cls + (this.selected && (n.id === this.selected) ? " selected" : ""));
      }
      it.el.dataset.status = n.status;
      it.el.dataset.id = n.id;
      it.el.setAttribute("aria-label", `${n.label} (${n.status})`);
      const meta = metaText(n);
      if (it.meta.textContent !== meta) it.meta.textContent = meta;
    }
    if (!this.grouped) return;
    for (const n of this.dag.nodes) {
      if (n.group === undefined || n.group < 0) continue;
      if (!counts.has(n.group)) counts.set(n.group, {});
      const c = counts.get(n.group);
      c[n.status] = (c[n.status] || 0) + 1;
    }
    for (const it of this.items.values()) {
      if (!it.group) continue;
      const c = counts.get(it.index) || {};
      const statuses = STATUS_ORDER.filter((k) => c[k]);
      const worst = statuses.find((k) => k === "failed" || k === "running") || (statuses.length === 1 ? statuses[0] : "mixed");
      const cls = `group${it.open ? " open" : ""} st-${worst}`;
      if (it.el.getAttribute("class").replace(" has-selected", "") !== cls) it.el.setAttribute("class", cls);
      const text = `${it.group.size} steps` + (c.failed ? `, ${c.failed} failed` : "") + (c.running ? `, ${c.running} running` : "");
      if (it.meta.textContent !== text) it.meta.textContent = text;
      it.el.setAttribute("aria-label", `${it.group.label}: ${text}${it.open ? " (open)" : ""}`);
      const sig = statuses.map((k) => `${k}${c[k]}`).join();
      if (it.bar.dataset.sig !== sig) {
        it.bar.dataset.sig = sig;
        let x = 0;
        const total = it.group.size || 1;
        const width = it.w;
        it.bar.replaceChildren(...statuses.map((k) => {
          const w = (c[k] / total) * width;
          const r = s("rect", { x, y: 0, width: Math.max(w, 1), height: 6, class: `seg st-${k}` });
          x += w;
          return r;
        }));
      }
    }
    this._markSelected();
  }

  // -- selection, search, zoom ----------------------------------------------------------------

  select(id, { reveal = false } = {}) {
    const n = this.nodeFor(id);
    this.selected = n ? n.id : null;
    if (n && reveal) this.reveal(n);
    this._markSelected();
    const item = n && this.items.get("n:" + n.label);
    if (item) this._roving(item);
  }

  _markSelected() {
    if (!this.svg) return;
    for (const el of this.svg.querySelectorAll(".selected, .has-selected")) el.classList.remove("selected", "has-selected");
    if (!this.selected) return;
    const n = this.nodeById.get(this.selected);
    if (!n) return;
    const it = this.items.get("n:" + n.label);
    if (it) it.el.classList.add("selected");
    else if (n.group >= 0 && this.items.get("g:" + n.group)) this.items.get("g:" + n.group).el.classList.add("has-selected");
  }

  // Bring a node on screen: open its group if need be, and scroll it to the middle.
  reveal(node) {
    if (this.grouped && node.group >= 0 && !this.expanded.includes(node.group)) this.toggleGroup(node.group, true);
    const it = this.items.get("n:" + node.label);
    if (!it) return;
    const z = this.zoom;
    this.scroller.scrollLeft = (it.x + it.w / 2) * z - this.scroller.clientWidth / 2;
    this.scroller.scrollTop = (it.y + it.h / 2) * z - this.scroller.clientHeight / 2;
  }

  toggleGroup(index, open) {
    const at = this.expanded.indexOf(index);
    const want = open ?? at < 0;
    if (want && at >= 0) return;
    if (!want && at < 0) return;
    if (want) {
      this.expanded.push(index);
      // Keep the DOM small: the oldest open groups close when too many members are shown.
      const size = (i) => this.dag.groups[i].size;
      let shown = this.expanded.reduce((a, i) => a + size(i), 0);
      while (shown > MAX_SHOWN_MEMBERS && this.expanded.length > 1) shown -= size(this.expanded.shift());
    } else {
      this.expanded.splice(at, 1);
    }
    this._render(false);
    const it = this.items.get("g:" + index);
    if (it) this._roving(it, true);
  }

  search(text, limit = 12) {
    const q = text.trim().toLowerCase();
    if (!q || !this.dag) return [];
    const hits = [];
    for (const n of this.dag.nodes) {
      const i = n.label.toLowerCase().indexOf(q);
      if (i >= 0) hits.push([i, n]);
    }
    hits.sort((a, b) => a[0] - b[0] || naturalCompare(a[1].label, b[1].label));
    return hits.slice(0, limit).map(([, n]) => n);
  }

  _applyZoom() {
    this.svg.setAttribute("width", Math.max(1, Math.round(this.width * this.zoom)));
    this.svg.setAttribute("height", Math.max(1, Math.round(this.height * this.zoom)));
  }

  setZoom(z, around = null) {
    z = Math.min(2, Math.max(0.02, z));
    const sc = this.scroller;
    const cx = around ? around.x : sc.clientWidth / 2, cy = around ? around.y : sc.clientHeight / 2;
    const px = (sc.scrollLeft + cx) / this.zoom, py = (sc.scrollTop + cy) / this.zoom;
    this.zoom = z;
    this._applyZoom();
    sc.scrollLeft = px * z - cx;
    sc.scrollTop = py * z - cy;
  }

  fit() {
    const sc = this.scroller;
    const z = Math.min(1, (sc.clientWidth - 4) / this.width, (sc.clientHeight - 4) / this.height);
    this.zoom = Math.max(0.02, z);
    this._applyZoom();
    sc.scrollLeft = 0;
    sc.scrollTop = 0;
  }

  // A first view: everything when it fits legibly, else actual size from the start.
  initialView() {
    const sc = this.scroller;
    const z = Math.min(1, (sc.clientWidth - 4) / this.width, (sc.clientHeight - 4) / this.height);
    if (z >= 0.6) this.fit();
  }

  setOrient(orient) {
    if (orient === this.orient) return;
    this.orient = orient;
    this._render(false);
  }

  // -- input ----------------------------------------------------------------------------------

  _itemOf(target) {
    const el = target && target.closest ? target.closest("[data-item]") : null;
    return el ? this.items.get(el.dataset.item) : null;
  }

  _activate(it) {
    if (!it) return;
    if (it.node) this.onSelect(it.node);
    else if (it.group) this.toggleGroup(it.index);
  }

  _roving(it, focus = false) {
    if (!this.svg) return;
    let target = it;
    if (!target) {
      const sel = this.selected && this.nodeById.get(this.selected);
      target = (sel && (this.items.get("n:" + sel.label) || this.items.get("g:" + sel.group))) || this.items.values().next().value;
    }
    if (!target) return;
    if (this.current && this.current !== target && this.current.el) this.current.el.setAttribute("tabindex", "-1");
    this.current = target;
    target.el.setAttribute("tabindex", "0");
    if (focus) target.el.focus({ preventScroll: false });
  }

  _move(from, key) {
    const lr = this.orient === "lr";
    const dir = { ArrowDown: [0, 1], ArrowUp: [0, -1], ArrowRight: [1, 0], ArrowLeft: [-1, 0] }[key];
    const cx = from.x + from.w / 2, cy = from.y + from.h / 2;
    let best = null, bestScore = Infinity;
    for (const it of this.items.values()) {
      if (it === from || it.open) continue;
      const dx = it.x + it.w / 2 - cx, dy = it.y + it.h / 2 - cy;
      const along = dx * dir[0] + dy * dir[1];
      if (along <= 1) continue;
      const side = Math.abs(dx * dir[1] + dy * dir[0]);
      const score = along + 3 * side;
      if (score < bestScore) { bestScore = score; best = it; }
    }
    void lr;
    return best;
  }

  _wireInput() {
    const sc = this.scroller;
    sc.addEventListener("click", (ev) => {
      if (this.dragged) return;
      this._activate(this._itemOf(ev.target));
    });
    sc.addEventListener("keydown", (ev) => {
      const it = this._itemOf(ev.target);
      if (!it) return;
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); this._activate(it); return; }
      if (ev.key.startsWith("Arrow")) {
        ev.preventDefault();
        const next = this._move(it, ev.key);
        if (next) this._roving(next, true);
      } else if (ev.key === "Escape" && it.parent) {
        ev.preventDefault();
        this.toggleGroup(it.parent.index, false);
      }
    });
    sc.addEventListener("focusin", (ev) => {
      const it = this._itemOf(ev.target);
      if (it && it !== this.current) this._roving(it);
    });
    sc.addEventListener("mouseover", (ev) => {
      const it = this._itemOf(ev.target);
      if (!it) { this.tip.hidden = true; return; }
      const n = it.node;
      this.tip.textContent = n ? `${n.label}\n${n.status}${n.key ? "\n" + n.key : ""}` : `${it.group.label}\n${it.meta.textContent}\n${it.open ? "click to close" : "click to open"}`;
      const r = it.el.getBoundingClientRect(), box = this.scroller.parentNode.getBoundingClientRect();
      this.tip.style.left = `${Math.max(0, r.left - box.left)}px`;
      this.tip.style.top = `${r.bottom - box.top + 4}px`;
      this.tip.hidden = false;
    });
    sc.addEventListener("mouseleave", () => { this.tip.hidden = true; });
    sc.addEventListener("wheel", (ev) => {
      if (!ev.ctrlKey && !ev.metaKey) return;
      ev.preventDefault();
      const r = sc.getBoundingClientRect();
      this.setZoom(this.zoom * (ev.deltaY < 0 ? 1.15 : 1 / 1.15), { x: ev.clientX - r.left, y: ev.clientY - r.top });
    }, { passive: false });
    // Drag the background to pan.
    let drag = null;
    sc.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0 || this._itemOf(ev.target) || ev.pointerType === "touch") return;
      drag = { x: ev.clientX, y: ev.clientY, left: sc.scrollLeft, top: sc.scrollTop, moved: false };
      this.dragged = false;
    });
    window.addEventListener("pointermove", (ev) => {
      if (!drag) return;
      const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) { drag.moved = true; sc.classList.add("panning"); }
      sc.scrollLeft = drag.left - dx;
      sc.scrollTop = drag.top - dy;
    });
    window.addEventListener("pointerup", () => {
      if (drag && drag.moved) { this.dragged = true; setTimeout(() => { this.dragged = false; }, 0); }
      drag = null;
      sc.classList.remove("panning");
    });
  }
}
