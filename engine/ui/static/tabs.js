// The side panel's tabs: each loads its part of the selected step from the API.

import { renderBlocks } from "./blocks.js";
import { ApiError, api, bytes, h, short, when } from "./dom.js";

export const TABS = ["inputs", "output", "code", "config", "environment", "logs", "lineage", "why"];

const LOADERS = { inputs, output, code, config, environment, logs, lineage, why };

export async function loadTab(tab, ctx) {
  if (ctx.node && ctx.node.status === "running" && tab === "logs") return liveLog(ctx);
  if (!ctx.key) return pendingNote(ctx.node);
  // An interrupted step has a key but no result; only its why tab has something to say.
  if (ctx.node && ctx.node.status === "interrupted" && tab !== "why") return pendingNote(ctx.node);
  return LOADERS[tab](ctx);
}

const LIVE_POLL_MS = 700;

// The log of a running step, as it grows: whole lines appended, the view kept at its end
// unless the reader scrolled up. Polling stops when the panel shows something else or the
// step ends (the build page then shows the stored log).
function liveLog(ctx) {
  const pre = h("pre", { class: "log live", "aria-live": "off" });
  const note = h("p", { class: "muted" }, "Running: its output appears as it prints it.");
  const wrap = h("div", {}, note, pre);
  let next = null;
  async function poll() {
    if (!ctx.alive() || !wrap.isConnected && next !== null) return;
    let chunk = null;
    try {
      chunk = await api(`/api/live/${ctx.node.label.replace(/^\/\//, "")}` + (next === null ? "" : `?offset=${next}`));
    } catch {
      chunk = null;
    }
    if (chunk && chunk.running) {
      if (chunk.text) {
        const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.append(document.createTextNode(chunk.text));
        if (atEnd) pre.scrollTop = pre.scrollHeight;
      }
      next = chunk.next;
      pre.dataset.size = String(chunk.size);
    } else if (chunk && !chunk.running && next !== null) {
      note.textContent = "The step finished; its stored log replaces this when the build's record shows it.";
      return;
    }
    if (ctx.alive()) setTimeout(poll, LIVE_POLL_MS);
  }
  poll();
  return wrap;
}

function pendingNote(node) {
  const status = node ? node.status : "unknown";
  const text = {
    running: "This step is running; its result appears here when it finishes.",
    pending: "This step waits for its inputs.",
    skipped: "This step did not run: something it needs failed.",
    not_run: "This step never ran: the build ended before it (interrupted, or stopped after a failure).",
    interrupted: "This step was running when the build was interrupted.",
  }[status] || "This step has no action key.";
  return h("p", { class: "muted" }, text);
}

// A stored result never changes: each step's is asked for once, whichever tab asks first.
const stepDetails = new Map();

function action(ctx) {
  const id = `${ctx.key}|${ctx.buildId || ""}`;
  if (!stepDetails.has(id)) {
    const p = fetchAction(ctx);
    p.catch(() => stepDetails.delete(id));
    stepDetails.set(id, p);
  }
  return stepDetails.get(id);
}

async function fetchAction(ctx) {
  try {
    // Inputs named by the producers this build recorded for the step.
    return await api(`/api/actions/${ctx.key}` + (ctx.buildId ? `?build=${encodeURIComponent(ctx.buildId)}` : ""));
  } catch (err) {
    if (err instanceof ApiError && err.status === 404 && ctx.node && ctx.node.status === "failed") return null;
    throw err;
  }
}

function failedNote(ctx) {
  return h("div", {},
    ctx.node && ctx.node.error ? h("pre", { class: "error" }, ctx.node.error) : null,
    h("p", { class: "muted" }, "A failed step stores no result; see its logs."));
}

async function inputs(ctx) {
  const a = await action(ctx);
  if (!a) return failedNote(ctx);
  if (!a.inputs.length) return h("p", { class: "muted" }, "This step takes no inputs.");
  return h("table", { class: "list inputs" },
    h("thead", {}, h("tr", {}, h("th", {}, "input"), h("th", {}, "from"), h("th", {}, "digest"), h("th", {}, "artifacts"))),
    h("tbody", {}, a.inputs.map((i) => h("tr", {},
      h("th", {}, i.name),
      h("td", {}, i.producer_key
        ? h("a", { href: "#", class: "run-link", "data-run": i.producer_key, onclick: (ev) => { ev.preventDefault(); ctx.selectRun(i.producer_key); } }, i.producer_label || short(i.producer_key))
        : h("span", { class: "source" }, i.source ? `file ${i.source}` : "source file")),
      h("td", { class: "mono", title: i.digest }, short(i.digest)),
      h("td", {}, i.outputs.length
        ? i.outputs.map((o) => h("div", {}, h("a", { href: o.url }, o.name), ` ${o.codec}, ${bytes(o.size)}`))
        : h("a", { href: `/api/blobs/${i.digest}?name=${encodeURIComponent(i.name)}` }, "download"))))));
}

async function output(ctx) {
  const a = await action(ctx);
  if (!a) return failedNote(ctx);
  const out = await api(`/api/actions/${ctx.key}/output`);
  if (!out.outputs.length) return h("p", { class: "muted" }, "This step returned nothing and wrote no files.");
  return h("div", { class: "outputs" }, out.outputs.map((o) => h("section", { class: "artifact", "data-output": o.name },
    h("h3", {}, o.name === "value" ? "returned value" : o.name === "files" ? "files written to out/" : o.name,
      h("span", { class: "muted" }, ` ${o.codec} · ${bytes(o.size)} · `),
      h("a", { href: o.url, class: "download" }, "download")),
    renderBlocks(o.blocks))));
}

async function code(ctx) {
  const a = await action(ctx);
  if (!a) return failedNote(ctx);
  const c = await api(`/api/actions/${ctx.key}/code`);
  if (!c.available) return h("p", { class: "muted" }, `The code manifest ${c.digest} is no longer in the cache.`);
  return h("div", { class: "code" },
    h("p", {}, "rule ", h("code", {}, c.rule), " · code digest ", h("span", { class: "mono" }, short(c.digest)),
      c.imports.length ? [" · imports ", h("code", {}, c.imports.join(", "))] : ""),
    c.functions.map((f) => h("details", { open: true, class: "fn" },
      h("summary", {}, h("code", {}, f.name), h("span", { class: "muted" }, ` ${f.file} · ${short(f.digest)}`)),
      h("pre", { class: "source" }, f.source ?? "(this source is no longer in the cache)"))));
}

async function config(ctx) {
  const a = await action(ctx);
  if (!a) return failedNote(ctx);
  const empty = a.config === null || (typeof a.config === "object" && !Object.keys(a.config).length);
  return h("div", {},
    empty ? h("p", { class: "muted" }, "This step has no config.") : h("pre", { class: "json" }, JSON.stringify(a.config, null, 2)),
    h("p", { class: "muted" }, "rule ", h("code", {}, a.rule), ` · ran on ${a.host || "?"} with the ${a.executor} executor · ${when(a.finished)}`));
}

async function environment(ctx) {
  const a = await action(ctx);
  if (!a) return failedNote(ctx);
  const e = await api(`/api/actions/${ctx.key}/env`);
  if (!e.available) return h("p", { class: "muted" }, `The environment manifest ${e.digest} is no longer in the cache.`);
  return h("div", {},
    h("p", {}, "environment digest ", h("span", { class: "mono" }, short(e.digest))),
    e.image ? h("p", {}, "container image ", h("code", {}, e.image)) : null,
    e.python ? h("p", {}, "Python ", h("code", {}, e.python)) : null,
    Object.keys(e.packages).length
      ? h("table", { class: "kv" }, h("thead", {}, h("tr", {}, h("th", {}, "package"), h("th", {}, "version"))),
        h("tbody", {}, Object.entries(e.packages).map(([p, v]) => h("tr", {}, h("th", {}, p), h("td", { class: "mono" }, v)))))
      : h("p", { class: "muted" }, "No third-party packages."));
}

async function logs(ctx) {
  let digest = ctx.node ? ctx.node.log_digest : null;
  if (!digest && (!ctx.node || ctx.node.status !== "failed")) {
    const a = await action(ctx);
    digest = a ? a.log_digest : null;
  }
  const err = ctx.node && ctx.node.error ? h("pre", { class: "error" }, ctx.node.error) : null;
  if (!digest) return h("div", {}, err, h("p", { class: "muted" }, "The step printed nothing."));
  const log = await api(`/api/logs/${digest}`);
  return h("div", {}, err,
    log.truncated ? h("p", { class: "muted" }, `Last ${bytes(log.text.length)} of ${bytes(log.size)}; `, h("a", { href: `/api/blobs/${digest}?name=log.txt` }, "download all")) : null,
    h("pre", { class: "log", tabindex: 0 }, log.text));
}

async function lineage(ctx) {
  const a = await action(ctx);
  if (!a) return failedNote(ctx);
  const l = await api(`/api/actions/${ctx.key}/lineage` + (ctx.buildId ? `?build=${encodeURIComponent(ctx.buildId)}` : ""));
  const link = (key, label) => h("a", { href: "#", class: "run-link", "data-run": key, onclick: (ev) => { ev.preventDefault(); ctx.selectRun(key); } }, label);
  const up = l.upstream.nodes.filter((n) => n.depth > 0);
  const sources = l.upstream.nodes.flatMap((n) => n.sources.map((src) => ({ ...src, of: n.label })));
  return h("div", { class: "lineage" },
    h("h3", {}, "upstream"),
    up.length ? h("ul", {}, up.map((n) => h("li", { style: `margin-left:${(n.depth - 1) * 18}px` },
      link(n.key, n.label), h("span", { class: "muted" }, ` ${n.rule} · ${short(n.key)}`),
      n.upstream.length ? h("span", { class: "muted" }, " ← " + n.upstream.map((u) => u.label).join(", ")) : null))) : h("p", { class: "muted" }, "Nothing upstream: this step reads only source files."),
    sources.length ? [h("h3", {}, "sources"), h("ul", {}, sources.map((src) => h("li", {}, h("code", {}, src.path || src.input), h("span", { class: "muted" }, ` → ${src.of} (${src.input}) · ${short(src.digest)}`))))] : null,
    h("h3", {}, "downstream"),
    l.downstream.length ? h("ul", {}, l.downstream.map((c) => h("li", { style: `margin-left:${(c.depth - 1) * 18}px` },
      link(c.key, c.label), h("span", { class: "muted" }, ` as ${c.input} · ${short(c.key)}`)))) : h("p", { class: "muted" }, "No cached action used this result."));
}

async function why(ctx) {
  let label = ctx.node ? ctx.node.label : null;
  if (!label) {
    const a = await action(ctx);
    label = a.label;
  }
  const w = await api(`/api/builds/${encodeURIComponent(ctx.buildId)}/why/${label.replace(/^\/\//, "")}`);
  return renderWhy(w);
}

const VERDICTS = {
  cached: "Cached: its key was in the local action cache, so it did not run.",
  remote: "A remote cache hit: its key was in the shared cache, so it did not run here.",
  rebuilt: "Executed: its key was in no cache.",
  failed: "Failed.",
  skipped: "Skipped: an input failed, or the build stopped first.",
};

function renderWhy(w) {
  const e = w.explanation;
  const functions = e.causes.filter((c) => c.kind === "function" && c.diff);
  return h("div", { class: "why" },
    h("p", { class: "verdict" }, VERDICTS[e.verdict] || e.verdict),
    e.error ? h("pre", { class: "error" }, e.error) : null,
    w.texts.length ? [h("h3", {}, e.previous_key ? "what changed since the previous key" : "why"), h("ul", { class: "causes" }, w.texts.map((t) => h("li", {}, t)))] : null,
    functions.map((c) => h("details", { open: true, class: "fn" }, h("summary", {}, h("code", {}, c.name), " source diff"), h("pre", { class: "diff" }, diffLines(c.diff)))),
    e.previous_key ? h("p", { class: "muted" }, "previous key ", h("span", { class: "mono" }, short(e.previous_key)),
      e.previous_build ? [" in build ", h("a", { href: `/builds/${e.previous_build}#run=${e.previous_key}&tab=why` }, e.previous_build)] : "") : null);
}

function diffLines(text) {
  return text.split("\n").map((line) => h("span", { class: line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : "" }, line + "\n"));
}
