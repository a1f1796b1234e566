// The build page: header, DAG, and the side panel of the selected step.
//
// Deep links: the path names the build, the hash what is selected (#run=<action key>&tab=<tab>),
// the query view settings (?orient=lr). Selecting a step pushes ONE history entry whose URL sets
// step and tab together; switching tabs replaces the current entry. So Back returns to the
// previous selection, and every URL in the history is a complete, valid selection.

import { drawDag, LEGEND } from "./dag.js";
import { ApiError, api, badge, errorBox, h, seconds, short, targetHref, when } from "./dom.js";
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

export async function buildPage(root, buildId) {
  const view = new URLSearchParams(location.search);
  const state = { detail: null, orient: view.get("orient") === "lr" ? "lr" : "tb", shown: null, token: 0, cache: new Map() };
  const header = h("section", { class: "build-head" });
  const graph = h("div", { class: "graph" });
  const panel = h("aside", { class: "panel", id: "panel" });
  root.replaceChildren(header, h("div", { class: "build-body" }, h("div", { class: "graph-col" }, graph), panel));

  function nodeFor(run) {
    if (!run || !state.detail) return null;
    return state.detail.dag.nodes.find((n) => n.id === run || n.key === run || n.label === run) || null;
  }

  function select(node) {
    const { run, tab } = parseHash();
    if (run === node.id) return;
    history.pushState(null, "", location.pathname + location.search + hashFor(node.id, tab));
    apply();
  }

  function selectRun(key) {
    const { tab } = parseHash();
    history.pushState(null, "", location.pathname + location.search + hashFor(key, tab));
    apply();
  }

  function selectTab(tab) {
    const { run } = parseHash();
    history.replaceState(null, "", location.pathname + location.search + hashFor(run, tab));
    apply();
  }

  function setOrient(orient) {
    state.orient = orient;
    const q = new URLSearchParams(location.search);
    if (orient === "lr") q.set("orient", "lr"); else q.delete("orient");
    const qs = q.toString();
    history.replaceState(null, "", location.pathname + (qs ? "?" + qs : "") + location.hash);
    drawGraph();
  }

  function drawHeader() {
    const b = state.detail.build;
    const counts = Object.entries(b.counts).map(([k, v]) => h("span", { class: `chip st-${k}` }, `${v} ${k}`));
    const duration = b.finished ? seconds(b.seconds ?? Math.max(0, b.finished - b.started)) : seconds(Math.max(0, Date.now() / 1000 - b.started)) + " so far";
    header.replaceChildren(
      h("div", { class: "title-row" },
        h("h1", {}, "Build ", h("span", { class: "mono" }, b.id)), badge(b.status),
        h("span", { class: "counts" }, counts)),
      h("dl", { class: "facts" },
        fact("targets", b.targets.map((t) => h("a", { href: targetHref(t) }, t)).reduce((acc, el, i) => (i ? [...acc, ", ", el] : [el]), [])),
        fact("started", `${when(b.started)} (${duration})`),
        fact("commit", b.git_commit ? [h("span", { class: "mono" }, short(b.git_commit)), b.git_dirty ? h("span", { class: "dirty" }, " dirty") : ""] : "—"),
        fact("by", `${b.user}@${b.host}`),
        fact("executor", b.executor),
        fact("workspace", h("span", { class: "mono" }, b.workspace)),
        fact("command", h("code", {}, b.argv.join(" "))),
        Object.keys(state.detail.overrides).length ? fact("overrides", h("code", {}, JSON.stringify(state.detail.overrides))) : null,
      ));
  }

  function drawGraph() {
    const { run } = parseHash();
    const toggle = h("div", { class: "graph-tools" },
      h("span", { class: "legend" }, LEGEND.map(([k, text]) => h("span", { class: `key st-${k}` }, h("i"), text))),
      h("span", { class: "orient" }, "layout ",
        h("button", { type: "button", title: "top to bottom", class: state.orient === "tb" ? "on" : "", onclick: () => setOrient("tb") }, "↓"),
        h("button", { type: "button", title: "left to right", class: state.orient === "lr" ? "on" : "", onclick: () => setOrient("lr") }, "→")));
    const dag = state.detail.dag;
    const body = dag.nodes.length
      ? h("div", { class: "dag-scroll" }, drawDag(dag, { selected: run, orient: state.orient, onSelect: select }))
      : h("p", { class: "muted" }, "No steps recorded yet.");
    graph.replaceChildren(toggle, dag.note ? h("p", { class: "muted note" }, dag.note) : "", body);
  }

  async function drawPanel(force = false) {
    const { run, tab } = parseHash();
    const node = nodeFor(run);
    const sig = JSON.stringify([run, tab, node && node.status]);
    if (!force && sig === state.shown) return;
    state.shown = sig;
    const token = ++state.token;
    if (!run) {
      panel.removeAttribute("data-run");
      panel.removeAttribute("data-tab");
      panel.replaceChildren(h("div", { class: "empty" }, h("p", {}, "Select a step in the graph to see its inputs, output, code, config, environment, logs, lineage and why it ran.")));
      return;
    }
    const label = node ? node.label : null;
    const tabs = h("div", { class: "tabs", role: "tablist" }, TABS.map((t) =>
      h("button", { type: "button", role: "tab", class: "tab", "data-tab": t, "aria-selected": t === tab ? "true" : "false", onclick: () => selectTab(t) }, t)));
    const body = h("div", { class: "tab-body", role: "tabpanel" }, h("p", { class: "muted" }, "Loading…"));
    const head = h("div", { class: "panel-head" },
      h("h2", { class: "step-label" }, label || "action " + short(run)),
      node ? badge(node.status) : null,
      h("div", { class: "step-meta" },
        node && node.key ? h("span", { class: "mono", title: node.key }, "key " + short(node.key)) : null,
        node && node.seconds ? h("span", {}, seconds(node.seconds)) : null,
        label ? h("a", { href: targetHref(label) }, "history") : null));
    panel.setAttribute("data-run", run);
    panel.setAttribute("data-tab", tab);
    panel.replaceChildren(head, tabs, body);
    const key = node ? node.key : run;
    const cacheable = !node || ["cached", "remote", "executed", "failed"].includes(node.status);
    const id = `${key}:${tab}`;
    try {
      let content = cacheable ? state.cache.get(id) : null;
      if (!content) {
        content = await loadTab(tab, { key, node, buildId, selectRun });
        if (cacheable) state.cache.set(id, content);
      }
      if (token === state.token) body.replaceChildren(content);
    } catch (err) {
      if (token === state.token) body.replaceChildren(errorBox(err));
    }
  }

  function apply() {
    if (!state.detail) return;
    drawGraph();
    drawPanel();
  }

  async function refresh() {
    try {
      state.detail = await api(`/api/builds/${encodeURIComponent(buildId)}`);
    } catch (err) {
      header.replaceChildren(h("h1", {}, "Build ", h("span", { class: "mono" }, buildId)), errorBox(err));
      return err instanceof ApiError && err.status === 404 ? "gone" : "retry";
    }
    drawHeader();
    apply();
    return state.detail.build.status;
  }

  window.addEventListener("popstate", apply);
  window.addEventListener("hashchange", apply);
  const live = document.getElementById("live");
  // A running build is followed live: the record is rewritten as steps finish.
  for (;;) {
    const status = await refresh();
    const running = status === "running" || status === "retry";
    live.hidden = !running;
    if (!running) break;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

function fact(name, value) {
  return [h("dt", {}, name), h("dd", {}, value)];
}
