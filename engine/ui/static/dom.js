// Small helpers shared by every page: building elements, fetching the API, formatting.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "style") el.style.cssText = v;  // through the CSSOM: the CSP forbids style attributes
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(path) {
  const resp = await fetch(path, { headers: { Accept: "application/json" } });
  let body = null;
  try { body = await resp.json(); } catch { body = null; }
  if (!resp.ok) throw new ApiError(resp.status, (body && body.error) || `${resp.status} ${resp.statusText}`);
  return body;
}

// A resource polled while something runs: asks with If-None-Match, so an unchanged answer
// is a 304 with no body. get() resolves to the data when it changed, null when it did not.
export class Polled {
  constructor(path) { this.path = path; this.etag = null; this.data = null; }
  async get() {
    const headers = { Accept: "application/json" };
    if (this.etag) headers["If-None-Match"] = this.etag;
    const resp = await fetch(this.path, { headers, cache: "no-cache" });
    if (resp.status === 304) return null;
    let body = null;
    try { body = await resp.json(); } catch { body = null; }
    if (!resp.ok) throw new ApiError(resp.status, (body && body.error) || `${resp.status} ${resp.statusText}`);
    this.etag = resp.headers.get("ETag");
    this.data = body;
    return body;
  }
}

// Python's shlex.join: words a POSIX shell reads back as they were.
export function shellJoin(argv) {
  return argv.map((w) => (w !== "" && /^[\w@%+=:,./-]+$/.test(w) ? w : "'" + w.replace(/'/g, "'\"'\"'") + "'")).join(" ");
}

// t2 before t10: digit runs compare as numbers.
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
export const naturalCompare = collator.compare;

// Replace an element's text only when it changed (a text selection in it survives otherwise).
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function num(v) {
  if (typeof v !== "number") return v === null ? "null" : String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return String(Number(v.toPrecision(4)));
}

export function seconds(v) {
  if (v === null || v === undefined) return "";
  if (v < 1) return `${(v * 1000).toFixed(0)} ms`;
  if (v < 60) return `${v.toFixed(1)} s`;
  const m = Math.floor(v / 60);
  return `${m} min ${Math.round(v - 60 * m)} s`;
}

export function when(ts) {
  if (!ts) return "";
  const d = new Date(ts * 1000);
  const pad = (x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function ago(ts) {
  if (!ts) return "";
  const dt = Date.now() / 1000 - ts;
  if (dt < 60) return "just now";
  if (dt < 3600) return `${Math.floor(dt / 60)} min ago`;
  if (dt < 86400) return `${Math.floor(dt / 3600)} h ago`;
  return `${Math.floor(dt / 86400)} d ago`;
}

export function short(digest) {
  return digest ? digest.slice(0, 10) : "";
}

export function badge(status) {
  return h("span", { class: `badge st-${status}`, "data-status": status }, status);
}

// "//models:resnet" <-> "/targets/models:resnet"
export function targetHref(label) {
  return "/targets/" + label.replace(/^\/\//, "");
}

export function buildHref(id, run, tab) {
  const hash = run ? `#run=${encodeURIComponent(run)}&tab=${encodeURIComponent(tab || "output")}` : "";
  return `/builds/${encodeURIComponent(id)}${hash}`;
}

export function errorBox(err) {
  return h("div", { class: "error", role: "alert" }, err.message || String(err));
}

// The status chips of a counts object, in a fixed order.
const ORDER = ["failed", "running", "pending", "executed", "remote", "cached", "skipped"];
export function chips(counts) {
  return Object.entries(counts).sort((a, b) => ORDER.indexOf(a[0]) - ORDER.indexOf(b[0]))
    .map(([k, v]) => h("span", { class: `chip st-${k}` }, `${v} ${k}`));
}

// What a build was asked to build, in a line: the patterns, and how many targets they named.
export function targetSummary(b, link = true) {
  const shown = (b.patterns && b.patterns.length ? b.patterns : b.targets).slice(0, 3);
  const words = shown.map((t, i) => [i ? ", " : "", link && !t.includes("...") && !t.startsWith(":") ? h("a", { href: targetHref(t), title: t }, t) : h("span", { title: t }, t)]);
  const count = b.target_count ?? b.targets.length;
  const more = (b.patterns && b.patterns.length ? b.patterns.length : count) - shown.length;
  const note = count !== shown.length || more > 0 ? h("span", { class: "muted" }, ` (${count} target${count === 1 ? "" : "s"})`) : null;
  return [words, more > 0 ? ` +${more}` : "", note];
}
