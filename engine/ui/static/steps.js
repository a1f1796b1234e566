// The steps of a build as a table: the alternative to the graph, with sort and filter.
// Only one page of rows is in the document at a time, whatever the build's size.

import { h, naturalCompare, seconds, short } from "./dom.js";

const PAGE = 100;
const COLUMNS = [["label", "step"], ["status", "status"], ["seconds", "took"], ["key", "key"]];

export class StepTable {
  constructor(container, { onSelect }) {
    this.onSelect = onSelect;
    this.sort = "label";
    this.desc = false;
    this.page = 0;
    this.filter = "";
    this.status = "";
    this.filterInput = h("input", { type: "search", placeholder: "filter steps", "aria-label": "filter steps", class: "step-filter" });
    this.statusSelect = h("select", { "aria-label": "status" });
    this.filterInput.addEventListener("input", () => { this.filter = this.filterInput.value; this.page = 0; this.draw(); });
    this.statusSelect.addEventListener("change", () => { this.status = this.statusSelect.value; this.page = 0; this.draw(); });
    this.head = h("tr", {});
    this.body = h("tbody", {});
    this.info = h("span", { class: "muted" });
    this.pager = h("div", { class: "pager" });
    container.replaceChildren(
      h("div", { class: "step-tools" }, this.filterInput, this.statusSelect, this.info),
      h("div", { class: "table-scroll" }, h("table", { class: "list steps" }, h("thead", {}, this.head), this.body)),
      this.pager);
    this.body.addEventListener("click", (ev) => {
      const a = ev.target.closest("a[data-id]");
      if (!a) return;
      ev.preventDefault();
      const n = this.nodes.find((x) => x.id === a.dataset.id);
      if (n) this.onSelect(n);
    });
  }

  setNodes(nodes, selected) {
    this.nodes = nodes;
    this.selected = selected;
    const statuses = [...new Set(nodes.map((n) => n.status))].sort();
    const options = ["", ...statuses];
    if (this.statusSelect.options.length !== options.length || [...this.statusSelect.options].some((o, i) => o.value !== options[i])) {
      this.statusSelect.replaceChildren(...options.map((st) => h("option", { value: st, selected: st === this.status }, st || "any status")));
    }
    this.draw();
  }

  draw() {
    const q = this.filter.trim().toLowerCase();
    let rows = this.nodes.filter((n) => (!this.status || n.status === this.status) && (!q || n.label.toLowerCase().includes(q)));
    const key = this.sort;
    const cmp = key === "seconds" ? (a, b) => (a.seconds || 0) - (b.seconds || 0)
      : (a, b) => naturalCompare(String(a[key] ?? ""), String(b[key] ?? "")) || naturalCompare(a.label, b.label);
    rows = rows.slice().sort(cmp);
    if (this.desc) rows.reverse();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    this.page = Math.min(this.page, pages - 1);
    const shown = rows.slice(this.page * PAGE, (this.page + 1) * PAGE);
    this.head.replaceChildren(...COLUMNS.map(([k, text]) => {
      const on = k === this.sort;
      return h("th", { "aria-sort": on ? (this.desc ? "descending" : "ascending") : "none" },
        h("button", { type: "button", class: "sort", onclick: () => { this.desc = on ? !this.desc : false; this.sort = k; this.draw(); } }, text, on ? (this.desc ? " ▾" : " ▴") : ""));
    }));
    this.body.replaceChildren(...shown.map((n) => h("tr", { class: n.id === this.selected ? "selected" : "" },
      h("td", { class: "label-cell" }, h("a", { href: "#", "data-id": n.id, title: n.label, class: "ellipsis" }, n.label)),
      h("td", {}, h("span", { class: `badge st-${n.status}` }, n.status)),
      h("td", { class: "r" }, n.status === "executed" || n.status === "failed" ? seconds(n.seconds || 0) : ""),
      h("td", { class: "mono", title: n.key || "" }, short(n.key) || "—"))));
    if (!rows.length) this.body.replaceChildren(h("tr", {}, h("td", { colspan: 4, class: "muted empty" }, "No step matches this filter.")));
    this.info.textContent = `${rows.length} of ${this.nodes.length} steps`;
    this.pager.replaceChildren(...(pages > 1 ? [
      h("button", { type: "button", disabled: this.page === 0, onclick: () => { this.page--; this.draw(); } }, "‹ previous"),
      h("span", {}, ` page ${this.page + 1} of ${pages} `),
      h("button", { type: "button", disabled: this.page >= pages - 1, onclick: () => { this.page++; this.draw(); } }, "next ›"),
    ] : []));
  }
}
