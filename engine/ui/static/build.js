// The build page: header, DAG (or the steps table), and the side panel of the selected step.
//
// Deep links: the path names the build, the hash what is selected (#run=<action key>&tab=<tab>;
// a short key works too), the query view settings (?orient=lr, ?view=table). Selecting a step
// pushes ONE history entry whose URL sets step and tab together; switching tabs, the layout or
// the view replaces the current entry. Back and Forward re-read everything from the URL, so
// what is shown always agrees with it.
//
// Everything is drawn once and updated in place: a running build is polled with If-None-Match
// (a 304 when nothing changed), and a change touches only the texts and classes that differ.

import { DagView, LEGEND } from "./dag.js";
import { ApiError, Polled, badge, chips, errorBox, h, seconds, setText, shellJoin, short, targetHref, targetSummary, when } from "./dom.js";
import { StepTable } from "./steps.js";
import { TABS, loadTab } from "./tabs.js";

const POLL_MS = 1000;

export function parseHash() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const tab = params.get("tab");
  return { run: params.get("run") || null, tab: TABS.includes(tab) ? tab : "output" };
}

function hashFor(run, tab) {
  return `#run=${encodeURIComponent(run)}&tab=${encodeURIComponent(tab)}`;
}

function viewSettings() {
  const q = new URLSearchParams(location.search);
  return { orient: q.get("orient") === "lr" ? "lr" : "tb", view: q.get("view") === "table" ? "table" : "graph" };
}

function replaceQuery(name, value, fallback) {
  const q = new URLSearchParams(location.search);
  if (value === fallback) q.delete(name); else q.set(name, value);
  const qs = q.toString();
  history.replaceState(history.state, "", location.pathname + (qs ? "?" + qs : "") + location.hash);
}

export async function buildPage(root, buildId) {
  const polled = new Polled(`/api/builds/${encodeURIComponent(buildId)}`);
  const state = { detail: null, shownRun: undefined, shownTab: null, shownStatus: null, token: 0, cache: new Map(), settings: viewSettings() };

  // -- skeleton -----------------------------------------------------------------------------
  const header = h("section", { class: "build-head" }, h("h1", {}, "Build ", h("span", { class: "mono" }, buildId)), h("p", { class: "muted" }, "Loading…"));
  const results = h("ul", { class: "search-results", role: "listbox", id: "search-results", hidden: true });
  const search = h("input", { type: "search", class: "search", placeholder: "find a step…", "aria-label": "find a step by label",
    role: "combobox", "aria-controls": "search-results", "aria-expanded": "false", autocomplete: "off" });
  const btn = (text, title, onclick, attrs = {}) => h("button", { type: "button", title, "aria-label": title, onclick, ...attrs }, text);
  const orientTb = btn("↓", "layout top to bottom", () => setOrient("tb"), { class: "orient-tb" });
  const orientLr = btn("→", "layout left to right", () => setOrient("lr"), { class: "orient-lr" });
  const viewGraph = btn("graph", "show the graph", () => setView("graph"), { class: "view-graph" });
  const viewTable = btn("table", "show the steps as a table", () => setView("table"), { class: "view-table" });
  const graphTools = h("span", { class: "graph-only tools-group" },
    btn("−", "zoom out", () => dag.setZoom(dag.zoom / 1.25)),
    btn("fit", "fit the graph to the screen", () => dag.fit(), { class: "fit" }),
    btn("+", "zoom in", () => dag.setZoom(dag.zoom * 1.25)),
    h("span", { class: "orient", role: "group", "aria-label": "layout" }, orientTb, orientLr));
  const tools = h("div", { class: "graph-tools" },
    h("div", { class: "search-box" }, search, results),
    h("span", { class: "tools-group", role: "group", "aria-label": "view" }, viewGraph, viewTable),
    graphTools);
  const legend = h("div", { class: "legend graph-only" }, LEGEND.map(([k, text]) => h("span", { class: `key st-${k}` }, h("i"), text)));
  const graphBox = h("div", { class: "graph-box graph-only" });
  const tableBox = h("div", { class: "table-box table-only" });
  const dagNote = h("p", { class: "muted note", hidden: true });  // what the drawing leaves out (an old record)
  const graphCol = h("div", { class: "graph-col" }, tools, legend, dagNote, graphBox, tableBox);
  const panel = h("aside", { class: "panel", id: "panel", "aria-live": "polite" });
  const body = h("div", { class: "build-body" }, graphCol, panel);
  root.replaceChildren(header, body);

  const dag = new DagView(graphBox, { onSelect: (n) => select(n), orient: state.settings.orient });
  let table = null;

  // -- navigation ---------------------------------------------------------------------------
  function select(node) {
    const { run, tab } = parseHash();
    if (run === node.id) return;
    history.pushState(null, "", location.pathname + location.search + hashFor(node.id, tab));
    apply();
  }

  function selectRun(key) {
    const { tab } = parseHash();
    history.pushState(null, "", location.pathname + location.search + hashFor(key, tab));
    apply({ reveal: true });
  }

  function selectTab(tab) {
    const { run } = parseHash();
    history.replaceState(null, "", location.pathname + location.search + hashFor(run, tab));
    apply();
  }

  function setOrient(orient) {
    replaceQuery("orient", orient, "tb");
    apply();
  }

  function setView(view) {
    replaceQuery("view", view, "graph");
    apply();
  }

  function showSettings() {
    const st = viewSettings();
    state.settings = st;
    orientTb.setAttribute("aria-pressed", String(st.orient === "tb"));
    orientLr.setAttribute("aria-pressed", String(st.orient === "lr"));
    viewGraph.setAttribute("aria-pressed", String(st.view === "graph"));
    viewTable.setAttribute("aria-pressed", String(st.view === "table"));
    graphCol.dataset.view = st.view;
    dag.setOrient(st.orient);
    if (st.view === "table" && state.detail) {
      if (!table) table = new StepTable(tableBox, { onSelect: (n) => select(n) });
      if (table.nodes !== state.detail.dag.nodes) table.setNodes(state.detail.dag.nodes, dag.selected);
    }
  }

  // -- search -------------------------------------------------------------------------------
  let hits = [];
  let active = -1;
  function showResults() {
    hits = dag.search(search.value);
    active = hits.length ? 0 : -1;
    results.replaceChildren(...hits.map((n, i) => h("li", { role: "option", id: `hit-${i}`, "aria-selected": i === active ? "true" : "false", "data-id": n.id, class: "hit" },
      h("span", { class: `dot st-${n.status}` }), n.label)));
    if (search.value.trim() && !hits.length) results.replaceChildren(h("li", { class: "muted" }, "no step matches"));
    results.hidden = !search.value.trim();
    search.setAttribute("aria-expanded", String(!results.hidden));
    search.setAttribute("aria-activedescendant", active >= 0 ? `hit-${active}` : "");
  }
  function jump(node) {
    results.hidden = true;
    search.setAttribute("aria-expanded", "false");
    const { run, tab } = parseHash();
    if (run !== node.id) history.pushState(null, "", location.pathname + location.search + hashFor(node.id, tab));
    if (state.settings.view === "table") setView("graph");
    apply({ reveal: true });
  }
  search.addEventListener("input", showResults);
  search.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      if (!hits.length) return;
      active = (active + (ev.key === "ArrowDown" ? 1 : hits.length - 1)) % hits.length;
      for (const li of results.children) li.setAttribute("aria-selected", String(li.id === `hit-${active}`));
      search.setAttribute("aria-activedescendant", `hit-${active}`);
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      if (active >= 0) jump(hits[active]);
    } else if (ev.key === "Escape") {
      results.hidden = true;
    }
  });
  results.addEventListener("mousedown", (ev) => {
    const li = ev.target.closest("li[data-id]");
    if (!li) return;
    ev.preventDefault();
    jump(dag.nodeFor(li.dataset.id));
  });
  search.addEventListener("blur", () => { setTimeout(() => { results.hidden = true; }, 100); });

  // -- header -------------------------------------------------------------------------------
  const head = { note: dagNote };
  function drawHeader() {
    const b = state.detail.build;
    if (!head.status) {
      head.status = h("span", {});
      head.counts = h("span", { class: "counts" });
      head.took = h("span", {});
      head.title = h("div", { class: "title-row" }, h("h1", {}, "Build ", h("span", { class: "mono build-id" }, b.id)), head.status, head.counts);
      const overrides = state.detail.overrides || {};
      header.replaceChildren(head.title, h("dl", { class: "facts" },
        fact("targets", h("span", { class: "targets" }, targetSummary(b))),
        fact("started", [when(b.started), " (", head.took, ")"]),
        fact("commit", b.git_commit ? [h("span", { class: "mono", title: b.git_commit }, short(b.git_commit)), b.git_dirty ? h("span", { class: "dirty" }, " dirty") : ""] : "—"),
        fact("by", `${b.user}@${b.host}`),
        fact("workspace", h("span", { class: "mono", title: b.workspace }, b.workspace)),
        fact("executor", b.executor),
        fact("command", h("code", { class: "command" }, shellJoin(b.argv))),
        Object.keys(overrides).length ? fact("overrides", h("code", {}, JSON.stringify(overrides))) : null));
    }
    if (head.status.dataset.status !== b.status) head.status.replaceChildren(badge(b.status));
    head.status.dataset.status = b.status;
    const sig = JSON.stringify(b.counts);
    if (head.counts.dataset.sig !== sig) { head.counts.dataset.sig = sig; head.counts.replaceChildren(...chips(b.counts)); }
    setText(head.took, b.finished ? seconds(b.seconds ?? Math.max(0, b.finished - b.started)) : seconds(Math.max(0, Date.now() / 1000 - b.started)) + " so far");
    const note = state.detail.dag.note || "";
    if (head.note.textContent !== note) { head.note.textContent = note; head.note.hidden = !note; }
  }

  // -- panel --------------------------------------------------------------------------------
  const tabButtons = new Map();
  let tabBody = null;
  function drawPanel(force = false) {
    const { run, tab } = parseHash();
    const node = dag.nodeFor(run);
    const status = node ? node.status : null;
    if (!force && run === state.shownRun && tab === state.shownTab && status === state.shownStatus) return;
    const sameStep = run === state.shownRun && tabBody;
    state.shownRun = run;
    state.shownTab = tab;
    state.shownStatus = status;
    const token = ++state.token;
    if (!run) {
      panel.removeAttribute("data-run");
      panel.removeAttribute("data-tab");
      tabBody = null;
      panel.replaceChildren(h("div", { class: "empty" }, h("p", {}, "Select a step in the graph to see its inputs, output, code, config, environment, logs, lineage and why it ran.")));
      return;
    }
    if (!sameStep) {
      const label = node ? node.label : null;
      const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "step details" });
      tabButtons.clear();
      for (const t of TABS) {
        const b = h("button", { type: "button", role: "tab", class: "tab", id: `tab-${t}`, "data-tab": t, "aria-controls": "tab-body" }, t);
        tabButtons.set(t, b);
        tabs.append(b);
      }
      tabs.addEventListener("click", (ev) => { const b = ev.target.closest(".tab"); if (b) selectTab(b.dataset.tab); });
      tabs.addEventListener("keydown", (ev) => {
        const i = TABS.indexOf(parseHash().tab);
        const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 }[ev.key];
        if (next === undefined) return;
        ev.preventDefault();
        const t = TABS[(next + TABS.length) % TABS.length];
        selectTab(t);
        tabButtons.get(t).focus();
      });
      tabBody = h("div", { class: "tab-body", role: "tabpanel", id: "tab-body" });
      const headEl = h("div", { class: "panel-head" },
        h("h2", { class: "step-label", title: label || run }, label || "action " + short(run)),
        h("span", { class: "step-status" }),
        h("div", { class: "step-meta" },
          node && node.key ? h("span", { class: "mono", title: node.key }, "key " + short(node.key)) : null,
          h("span", { class: "step-took" }),
          label ? h("a", { href: targetHref(label) }, "history") : null));
      panel.replaceChildren(headEl, tabs, tabBody);
    }
    panel.querySelector(".step-status").replaceChildren(node ? badge(node.status) : "");
    setText(panel.querySelector(".step-took"), node && node.seconds ? seconds(node.seconds) : "");
    panel.setAttribute("data-run", run);
    panel.setAttribute("data-tab", tab);
    for (const [t, b] of tabButtons) {
      b.setAttribute("aria-selected", String(t === tab));
      b.setAttribute("tabindex", t === tab ? "0" : "-1");
    }
    tabBody.setAttribute("aria-labelledby", `tab-${tab}`);
    fillTab(tabBody, run, tab, node, token);
  }

  async function fillTab(target, run, tab, node, token) {
    const key = node ? node.key : run;
    const cacheable = !node || ["cached", "remote", "executed", "failed"].includes(node.status);
    const id = `${key}:${tab}`;
    let content = cacheable ? state.cache.get(id) : null;
    if (!content) target.replaceChildren(h("p", { class: "muted loading" }, "Loading…"));
    try {
      if (!content) {
        content = await loadTab(tab, { key, node, buildId, selectRun, alive: () => token === state.token });
        if (cacheable) state.cache.set(id, content);
      }
      if (token !== state.token) return;
      target.replaceChildren(content);
      // A log opens at its end: the last lines are the ones people look for.
      for (const pre of target.querySelectorAll("pre.log")) pre.scrollTop = pre.scrollHeight;
    } catch (err) {
      if (token === state.token) target.replaceChildren(errorBox(err));
    }
  }

  // -- applying the URL and new data --------------------------------------------------------
  let lastRun;
  function apply({ reveal = false } = {}) {
    if (!state.detail) return;
    showSettings();
    const { run } = parseHash();
    const node = dag.nodeFor(run);
    if (run !== lastRun || reveal) {
      dag.select(node ? node.id : null, { reveal });
      if (table) table.setNodes(state.detail.dag.nodes, dag.selected);
      lastRun = run;
    }
    drawPanel();
  }

  async function refresh() {
    let detail;
    try {
      detail = await polled.get();
    } catch (err) {
      if (!state.detail) header.replaceChildren(h("h1", {}, "Build ", h("span", { class: "mono" }, buildId)), errorBox(err));
      return err instanceof ApiError && err.status === 404 ? "gone" : "retry";
    }
    if (detail) {
      const first = !state.detail;
      state.detail = detail;
      drawHeader();
      dag.setDag(detail.dag);
      if (first) {
        const { run } = parseHash();
        const node = dag.nodeFor(run);
        lastRun = run;
        dag.select(node ? node.id : null);
        if (node) dag.reveal(node); else dag.initialView();
        if (node) dag.select(node.id);
        document.title = `Build ${detail.build.id} · mlbuild`;
      }
      if (table && state.settings.view === "table") table.setNodes(detail.dag.nodes, dag.selected);
      apply();
      if (!first) drawPanel();
    } else if (state.detail) {
      drawHeader();  // the running time moves on
    }
    return state.detail.build.status;
  }

  window.addEventListener("popstate", () => apply({ reveal: true }));
  const live = document.getElementById("live");
  // A running build is followed live: its record is rewritten as steps finish.
  for (;;) {
    const status = await refresh();
    if (status === "gone") break;
    const running = status === "running" || status === "retry";
    live.hidden = !running;
    if (!running || !root.isConnected) break;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

function fact(name, value) {
  return [h("dt", {}, name), h("dd", {}, value)];
}
