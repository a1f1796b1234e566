// The builds list, the targets list and a target's history.

import { ago, api, badge, buildHref, errorBox, h, seconds, short, targetHref, when } from "./dom.js";

const STATUSES = ["", "running", "succeeded", "failed", "interrupted", "abandoned"];
const LIST_POLL_MS = 2000;

export async function buildsPage(root) {
  // The filters are view settings: they live in the query string.
  const q = new URLSearchParams(location.search);
  const field = (name, attrs) => h("input", { name, value: q.get(name) || "", ...attrs });
  const status = h("select", { name: "status" }, STATUSES.map((st) => h("option", { value: st, selected: (q.get("status") || "") === st }, st || "any status")));
  // Which workspace's builds: the server's default (the one `mlbuild ui` started in), all, or one.
  const workspace = h("select", { name: "workspace", "aria-label": "workspace" },
    h("option", { value: "" }, "this workspace"), h("option", { value: "all", selected: q.get("workspace") === "all" }, "all workspaces"));
  api("/api/workspaces").then((data) => {
    for (const w of data.workspaces) {
      if (w.id) workspace.append(h("option", { value: w.id, selected: q.get("workspace") === w.id, title: w.root }, w.root + (w.current ? " (this one)" : "")));
    }
  }).catch(() => {});
  const form = h("form", { class: "filters", role: "search" },
    field("target", { placeholder: "target, e.g. //models:resnet", size: 28, "aria-label": "target" }),
    status,
    workspace,
    field("commit", { placeholder: "commit", size: 12, "aria-label": "commit" }),
    h("button", { type: "submit" }, "Filter"));
  const table = h("div", { class: "builds-table" }, h("p", { class: "muted" }, "Loading…"));
  root.replaceChildren(h("div", { class: "page-head" }, h("h1", {}, "Builds"), form), table);

  const apply = () => {
    const params = new URLSearchParams();
    for (const el of form.elements) if (el.name && el.value) params.set(el.name, el.value);
    const qs = params.toString();
    history.replaceState(null, "", location.pathname + (qs ? "?" + qs : ""));
    load();
  };
  form.addEventListener("submit", (ev) => { ev.preventDefault(); apply(); });
  status.addEventListener("change", apply);
  workspace.addEventListener("change", apply);

  let timer = null;
  async function load() {
    clearTimeout(timer);
    let data;
    try {
      data = await api("/api/builds" + location.search);
    } catch (err) {
      table.replaceChildren(errorBox(err));
      return;
    }
    table.replaceChildren(data.builds.length ? buildsTable(data) : h("p", { class: "muted empty" }, "No builds recorded in this cache yet. Run mlbuild //some:target, and it appears here."));
    const running = data.builds.some((b) => b.status === "running");
    document.getElementById("live").hidden = !running;
    // Keep the list current: new builds appear, running ones move on.
    timer = setTimeout(load, LIST_POLL_MS);
  }
  await load();
}

function buildsTable(data) {
  return h("table", { class: "list builds" },
    h("thead", {}, h("tr", {}, ["status", "build", "targets", "started", "took", "steps", "commit", "by", "workspace"].map((t) => h("th", {}, t)))),
    h("tbody", {}, data.builds.map((b) => h("tr", { "data-build": b.id },
      h("td", {}, badge(b.status)),
      h("td", {}, h("a", { href: buildHref(b.id), class: "mono build-link" }, b.id)),
      h("td", {}, b.targets.map((t, i) => [i ? ", " : "", h("a", { href: targetHref(t) }, t)])),
      h("td", { title: when(b.started) }, ago(b.started)),
      h("td", {}, b.finished ? seconds(b.seconds ?? Math.max(0, b.finished - b.started)) : "…"),
      h("td", { class: "counts" }, Object.entries(b.counts).map(([k, v]) => h("span", { class: `chip st-${k}` }, `${v} ${k}`))),
      h("td", { class: "mono" }, b.git_commit ? short(b.git_commit) + (b.git_dirty ? "*" : "") : "—"),
      h("td", {}, `${b.user}@${b.host}`),
      h("td", { class: "mono", title: b.workspace }, b.workspace.split("/").pop())))),
    data.total > data.builds.length ? h("caption", {}, `${data.builds.length} of ${data.total}`) : null);
}

export async function targetsPage(root) {
  root.replaceChildren(h("h1", {}, "Targets"), h("p", { class: "muted" }, "Loading…"));
  try {
    const data = await api("/api/targets");
    root.replaceChildren(h("h1", {}, "Targets"),
      data.targets.length
        ? h("ul", { class: "targets" }, data.targets.map((t) => h("li", {}, h("a", { href: targetHref(t) }, t))))
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
  root.replaceChildren(
    h("div", { class: "page-head" }, h("h1", {}, "History of ", h("span", { class: "mono" }, label)),
      h("a", { href: "/builds?target=" + encodeURIComponent(label) }, "its builds")),
    h("table", { class: "list history" },
      h("thead", {}, h("tr", {}, ["build", "started", "step", "key", "took", "what changed in its key"].map((t) => h("th", {}, t)))),
      h("tbody", {}, data.entries.map((e) => h("tr", {},
        h("td", {}, h("a", { href: buildHref(e.build_id, e.key || label, "output"), class: "mono" }, e.build_id), " ", badge(e.build_status)),
        h("td", { title: when(e.started) }, ago(e.started)),
        h("td", {}, badge(e.status)),
        h("td", { class: "mono", title: e.key || "" }, short(e.key) || "—"),
        h("td", {}, e.status === "executed" || e.status === "failed" ? seconds(e.seconds) : ""),
        h("td", { class: "changes" }, e.texts.length ? h("ul", {}, e.texts.map((t) => h("li", {}, t))) : h("span", { class: "muted" }, sameNote(e, data.entries))))))));
}

function sameNote(e, entries) {
  const older = entries.slice(entries.indexOf(e) + 1);
  if (!e.key) return "";
  if (!older.some((o) => o.key)) return "first build";
  if (older.find((o) => o.key) && older.find((o) => o.key).key === e.key) return "same key";
  return "the earlier key is no longer cached";
}
