// The builds list, the targets list and a target's history.

import { trendCharts } from "./compare.js";
import { Polled, ago, api, badge, buildHref, chips, errorBox, h, naturalCompare, seconds, short, targetHref, targetSummary, when } from "./dom.js";

const STATUSES = ["", "running", "succeeded", "failed", "interrupted", "abandoned"];
const LIST_POLL_MS = 1500;

export async function buildsPage(root) {
  // The filters are view settings: they live in the query string.
  const q = new URLSearchParams(location.search);
  const field = (name, attrs) => h("input", { name, value: q.get(name) || "", ...attrs });
  const status = h("select", { name: "status", "aria-label": "status" }, STATUSES.map((st) => h("option", { value: st, selected: (q.get("status") || "") === st }, st || "any status")));
  // Which workspace's builds: the server's default (the one `mlbuild ui` started in), all, or one.
  const workspace = h("select", { name: "workspace", "aria-label": "workspace" },
    h("option", { value: "" }, "this workspace"), h("option", { value: "all", selected: q.get("workspace") === "all" }, "all workspaces"));
  api("/api/workspaces").then((data) => {
    for (const w of data.workspaces) {
      if (w.id) workspace.append(h("option", { value: w.id, selected: q.get("workspace") === w.id, title: w.root }, w.root + (w.current ? " (this one)" : "")));
    }
  }).catch(() => {});
  const form = h("form", { class: "filters", role: "search" },
    field("target", { placeholder: "target, e.g. //models:resnet", size: 28, "aria-label": "target", type: "search" }),
    status,
    workspace,
    field("commit", { placeholder: "commit", size: 12, "aria-label": "commit", type: "search" }),
    h("button", { type: "submit" }, "Filter"));
  const box = h("div", { class: "builds-table" }, h("p", { class: "muted" }, "Loading…"));
  // Rows ticked in the list's first column are compared (a deep link: /compare?builds=A,B).
  const compare = h("button", { type: "button", class: "compare-selected", disabled: true }, "Compare selected");
  const list = new BuildList(box, (n) => {
    compare.disabled = n < 2;
    compare.textContent = n >= 2 ? `Compare ${n} builds` : "Compare selected";
  });
  compare.addEventListener("click", () => {
    location.href = "/compare?" + new URLSearchParams({ builds: [...list.selected].join(",") });
  });
  root.replaceChildren(h("div", { class: "page-head" }, h("h1", {}, "Builds"), form, compare), box);

  let polled = new Polled("/api/builds" + location.search);
  const apply = () => {
    const params = new URLSearchParams();
    for (const el of form.elements) if (el.name && el.value) params.set(el.name, el.value);
    const qs = params.toString();
    history.replaceState(null, "", location.pathname + (qs ? "?" + qs : ""));
    polled = new Polled("/api/builds" + location.search);
    load();
  };
  form.addEventListener("submit", (ev) => { ev.preventDefault(); apply(); });
  status.addEventListener("change", apply);
  workspace.addEventListener("change", apply);

  // Asked again only while a build runs (new steps, a new status), and when the page comes
  // back into view; each time with If-None-Match, so an unchanged list costs a 304.
  let timer = null;
  async function load() {
    clearTimeout(timer);
    if (!root.isConnected) return;
    let data;
    try {
      data = await polled.get();
    } catch (err) {
      // Keep what is shown; a server busy or restarting is asked again while builds ran.
      if (!polled.data) box.replaceChildren(errorBox(err));
      else timer = setTimeout(load, 4 * LIST_POLL_MS);
      return;
    }
    if (data) list.show(data, [...new URLSearchParams(location.search).keys()].length > 0);
    const running = (polled.data ? polled.data.builds : []).some((b) => b.status === "running");
    document.getElementById("live").hidden = !running;
    if (running) timer = setTimeout(load, LIST_POLL_MS);
  }
  const again = () => { if (document.visibilityState === "visible") load(); };
  document.addEventListener("visibilitychange", again);
  window.addEventListener("focus", again);
  await load();
}

// The builds table, updated row by row: a row whose build did not change is left alone, so
// focus and a text selection in it survive every refresh.
class BuildList {
  constructor(box, onSelect) {
    this.box = box;
    this.selected = new Set();
    this.onSelect = onSelect;
    this.rows = new Map();
    this.tbody = h("tbody", {});
    this.caption = h("caption", {});
    this.table = h("div", { class: "table-scroll" }, h("table", { class: "list builds" },
      h("thead", {}, h("tr", {}, ["", "status", "build", "targets", "started", "took", "steps", "commit", "by", "workspace"].map((t) => h("th", { scope: "col" }, t)))),
      this.tbody, this.caption));
  }

  show(data, filtered) {
    if (!data.builds.length) {
      this.rows.clear();
      this.tbody.replaceChildren();
      this.box.replaceChildren(filtered
        ? h("p", { class: "muted empty" }, "No build matches these filters. ", h("a", { href: "/builds" }, "Show all builds"), ".")
        : h("p", { class: "muted empty" }, "No builds recorded in this cache yet. Run mlbuild //some:target, and it appears here."));
      return;
    }
    if (this.table.parentNode !== this.box) this.box.replaceChildren(this.table);
    const keep = new Map();
    let before = this.tbody.firstChild;
    for (const b of data.builds) {
      const sig = JSON.stringify([b.status, b.finished, b.counts]);
      let row = this.rows.get(b.id);
      if (!row || row.sig !== sig) {
        const el = buildRow(b, this);
        if (row) {
          if (before === row.el) before = el;  // it takes the old row's place
          row.el.replaceWith(el);
        }
        row = { el, sig };
      }
      keep.set(b.id, row);
      if (row.el !== before) this.tbody.insertBefore(row.el, before);
      else before = before.nextSibling;
    }
    for (const [id, row] of this.rows) if (!keep.has(id)) row.el.remove();
    this.rows = keep;
    this.caption.textContent = data.total > data.builds.length ? `${data.builds.length} of ${data.total}` : "";
  }
}

function buildRow(b, list) {
  const tick = h("input", { type: "checkbox", class: "pick", "aria-label": `select build ${b.id} to compare`, checked: list.selected.has(b.id) });
  tick.addEventListener("change", () => {
    if (tick.checked) list.selected.add(b.id); else list.selected.delete(b.id);
    list.onSelect(list.selected.size);
  });
  return h("tr", { "data-build": b.id },
    h("td", {}, tick),
    h("td", {}, badge(b.status)),
    h("td", {}, h("a", { href: buildHref(b.id), class: "mono build-link" }, b.id)),
    h("td", { class: "targets-cell" }, targetSummary(b)),
    h("td", { title: when(b.started) }, ago(b.started)),
    h("td", {}, b.finished ? seconds(b.seconds ?? Math.max(0, b.finished - b.started)) : "…"),
    h("td", { class: "counts" }, chips(b.counts)),
    h("td", { class: "mono" }, b.git_commit ? short(b.git_commit) + (b.git_dirty ? "*" : "") : "—"),
    h("td", { class: "ellipsis-cell", title: `${b.user}@${b.host}` }, `${b.user}@${b.host}`),
    h("td", { class: "mono ellipsis-cell", title: b.workspace }, b.workspace.split("/").pop()));
}

export async function targetsPage(root) {
  root.replaceChildren(h("h1", {}, "Targets"), h("p", { class: "muted" }, "Loading…"));
  try {
    const data = await api("/api/targets");
    root.replaceChildren(h("h1", {}, "Targets"),
      data.targets.length
        ? targetList(data.targets)
        : h("p", { class: "muted" }, "No target has been built yet."));
  } catch (err) {
    root.append(errorBox(err));
  }
}

export async function targetPage(root, label) {
  root.replaceChildren(h("h1", {}, label), h("p", { class: "muted" }, "Loading…"));
  let data;
  try {
    data = await api("/api/targets/" + label.replace(/^\/\//, ""));
  } catch (err) {
    root.replaceChildren(h("h1", {}, label), errorBox(err));
    return;
  }
  const trend = await api("/api/trend?" + new URLSearchParams({ target: label })).catch(() => null);
  root.replaceChildren(
    h("div", { class: "page-head" }, h("h1", {}, "History of ", h("span", { class: "mono" }, label)),
      h("a", { href: "/builds?target=" + encodeURIComponent(label) }, "its builds")),
    trend ? trendCharts(trend) : null,
    h("div", { class: "table-scroll" }, h("table", { class: "list history" },
      h("thead", {}, h("tr", {}, ["build", "started", "step", "key", "took", "what changed in its key"].map((t) => h("th", {}, t)))),
      h("tbody", {}, data.entries.map((e) => h("tr", {},
        h("td", {}, h("a", { href: buildHref(e.build_id, e.key || label, "output"), class: "mono" }, e.build_id), " ", badge(e.build_status)),
        h("td", { title: when(e.started) }, ago(e.started)),
        h("td", {}, badge(e.status)),
        h("td", { class: "mono", title: e.key || "" }, short(e.key) || "—"),
        h("td", {}, e.status === "executed" || e.status === "failed" ? seconds(e.seconds) : ""),
        h("td", { class: "changes" }, e.texts.length ? h("ul", {}, e.texts.map((t) => h("li", {}, t))) : h("span", { class: "muted" }, sameNote(e, data.entries)))))))));
}

// Every built label, in natural order, with a filter; at most LIST_MAX links at once.
const LIST_MAX = 500;
function targetList(targets) {
  const sorted = targets.slice().sort(naturalCompare);
  const input = h("input", { type: "search", placeholder: "filter targets", "aria-label": "filter targets" });
  const ul = h("ul", { class: "targets" });
  const note = h("p", { class: "muted" });
  const draw = () => {
    const q = input.value.trim().toLowerCase();
    const hits = q ? sorted.filter((t) => t.toLowerCase().includes(q)) : sorted;
    ul.replaceChildren(...hits.slice(0, LIST_MAX).map((t) => h("li", {}, h("a", { href: targetHref(t), title: t }, t))));
    note.textContent = hits.length > LIST_MAX ? `${LIST_MAX} of ${hits.length} shown: filter to find the rest.` : hits.length ? "" : "No target matches this filter.";
  };
  input.addEventListener("input", draw);
  draw();
  return h("div", {}, input, note, ul);
}

function sameNote(e, entries) {
  const older = entries.slice(entries.indexOf(e) + 1);
  if (!e.key) return "";
  if (!older.some((o) => o.key)) return "first build";
  if (older.find((o) => o.key) && older.find((o) => o.key).key === e.key) return "same key";
  return "the earlier key is no longer cached";
}
