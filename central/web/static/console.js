// The operator's console: the snapshot from /api/snapshot, kept live by /api/stream (server-sent events).
// Everything from the central goes into the page as text (textContent), never as HTML.
"use strict";

const RANK = { critical: 0, high: 1, normal: 2, low: 3 };
const HUB_ORDER = { offline: 0, silent: 1, late: 2, unknown: 3, online: 4 };
const ROUTES = { nurse: "nurse (helsetjenesteteam)", care: "care (omsorgsteam)", any: "any (alle)" };

const state = {
  route: null,            // null: all routes
  alarms: new Map(),      // event_id -> AlarmView (open ones in the filter)
  hubs: new Map(),        // hub -> HubView
  problems: new Map(),    // "hub/device/problem" -> DeviceProblem
  offsetMs: 0,            // the central's clock minus ours
  pending: new Set(),     // event ids with an ack in flight
  replies: new Map(),     // event_id -> {text, error}
  loadSeq: 0,
  buffering: false,
  buffered: [],
};

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

// --- time ------------------------------------------------------------------------------------

function now() { return Date.now() + state.offsetMs; }

function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ${String(m % 60).padStart(2, "0")} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

function since(ts) { return ts ? duration(now() - Date.parse(ts)) : null; }

function clock(ts) {
  if (!ts) return "never";
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? ts : d.toLocaleString();
}

// --- the route filter, kept in the URL ------------------------------------------------------------

function routeFromUrl() {
  const r = new URLSearchParams(location.search).get("route");
  return r === "nurse" || r === "care" ? r : null;
}

function matches(route) { return state.route === null || route === state.route || route === "any"; }

function showFilter() {
  for (const a of document.querySelectorAll(".filter a")) {
    const on = (a.dataset.route === "all" && state.route === null) || a.dataset.route === state.route;
    if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
}

function setRoute(route) {
  state.route = route;
  const url = new URL(location.href);
  if (route) url.searchParams.set("route", route); else url.searchParams.delete("route");
  history.pushState(null, "", url);
  showFilter();
  state.alarms.clear();
  state.problems.clear();
  render();
  loadSnapshot();
}

// --- data in -----------------------------------------------------------------------------------

const problemKey = (p) => `${p.hub}/${p.device}/${p.problem}`;

function applySnapshot(snap) {
  state.offsetMs = Date.parse(snap.at) - Date.now() || 0;
  state.alarms = new Map(snap.alarms.filter((a) => a.state === "open").map((a) => [a.event_id, a]));
  state.hubs = new Map(snap.hubs.map((h) => [h.hub, h]));
  state.problems = new Map(snap.problems.map((p) => [problemKey(p), p]));
  $("updated").textContent = `Snapshot ${clock(snap.at)}`;
}

let problemsReload = null;

function applyChange(c) {
  if (c.kind === "alarm" && c.alarm) {
    if (c.alarm.state === "open" && matches(c.alarm.route)) state.alarms.set(c.alarm.event_id, c.alarm);
    else state.alarms.delete(c.alarm.event_id);
  } else if (c.kind === "hub" && c.hub) {
    state.hubs.set(c.hub.hub, c.hub);
  } else if (c.kind === "problem" && c.problem) {
    // a problem without a route (an older central): with a filter on, the central decides whether it is ours
    if (state.route === null || c.problem.route) {
      if (matches(c.problem.route || "any")) state.problems.set(problemKey(c.problem), c.problem);
    } else if (!problemsReload) problemsReload = setTimeout(() => { problemsReload = null; loadSnapshot(); }, 200);
  } else if (c.kind === "problem_cleared" && c.problem) {
    state.problems.delete(problemKey(c.problem));
  } else if (c.kind === "lost") {
    const d = c.detail || {};
    const seqs = Array.isArray(d.seqs) ? d.seqs : [];
    notice(`Hub ${d.hub ?? "?"} lost ${seqs.length || "some"} event(s)${seqs.length ? ` (seq ${seqs.slice(0, 10).join(", ")}${seqs.length > 10 ? " …" : ""})` : ""}: they never reached the central.`, true);
  }
}

function onChange(c) {
  if (c.kind === "resync") { loadSnapshot(); return; }
  if (state.buffering) { state.buffered.push(c); return; }
  applyChange(c);
  render();
}

async function loadSnapshot() {
  const seq = ++state.loadSeq;
  state.buffering = true;
  state.buffered = [];
  try {
    const q = state.route ? `?route=${encodeURIComponent(state.route)}` : "";
    const r = await fetch(`/api/snapshot${q}`, { cache: "no-store" });
    if (!r.ok) throw new Error(`the central answered ${r.status}`);
    const snap = await r.json();
    if (seq !== state.loadSeq) return;
    applySnapshot(snap);
    // changes that came while the snapshot was on its way: applying one twice does no harm
    for (const c of state.buffered) applyChange(c);
  } catch (e) {
    if (seq === state.loadSeq) notice(`Could not read the central's state: ${e.message}`, true);
  } finally {
    if (seq === state.loadSeq) { state.buffering = false; state.buffered = []; render(); }
  }
}

// --- the live stream -------------------------------------------------------------------------------

let source = null;

function setLive(up) { $("banner").hidden = up; }

function connect() {
  source = new EventSource("/api/stream");
  source.addEventListener("hello", () => { setLive(true); loadSnapshot(); });
  source.addEventListener("change", (e) => {
    try { onChange(JSON.parse(e.data)); } catch (err) { console.error("bad change", err); }
  });
  source.onerror = () => {
    setLive(false);
    // the browser retries by itself unless it gave up (an error status): then we do
    if (source.readyState === EventSource.CLOSED) { source = null; setTimeout(connect, 3000); }
  };
}

// --- ack ----------------------------------------------------------------------------------------------

async function ack(id) {
  const by = $("operator").value.trim();
  if (!by) {
    state.replies.set(id, { text: "Write your name under Operator first.", error: true });
    render();
    $("operator").focus();
    return;
  }
  localStorage.setItem("operator", by);
  const alarm = state.alarms.get(id);
  state.pending.add(id);
  state.replies.set(id, { text: "Sending ack to the hub…", error: false });
  render();
  let reply;
  try {
    const r = await fetch(`/api/alarms/${encodeURIComponent(id)}/ack`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ by }),
    });
    let body = {};
    try { body = await r.json(); } catch { body = {}; }
    if (r.ok && body.ok) {
      for (const closed of [id, ...(body.closes || [])]) { state.alarms.delete(closed); state.replies.delete(closed); }
      const what = alarm ? `${alarm.label || alarm.type} at ${alarm.hub}${alarm.room ? ", " + alarm.room : ""}` : id;
      notice(`Acknowledged ${what} by ${by}: the hub replied ${body.result}.`, false);
    } else {
      reply = { text: `Not acknowledged: ${body.error || body.result || "the central answered " + r.status}`, error: true };
    }
  } catch (e) {
    reply = { text: `Not acknowledged: no answer from the central (${e.message})`, error: true };
  } finally {
    state.pending.delete(id);
    if (reply) state.replies.set(id, reply);
    render();
  }
}

// --- rendering -------------------------------------------------------------------------------------

function notice(text, error) {
  const li = el("li", error ? "error" : "", undefined);
  li.append(el("span", "", text));
  const close = el("button", "", "✕");
  close.type = "button";
  close.setAttribute("aria-label", "Dismiss");
  close.addEventListener("click", () => li.remove());
  li.append(close);
  const list = $("notices");
  list.prepend(li);
  while (list.children.length > 5) list.lastChild.remove();
}

function field(dl, label, value) {
  if (value === null || value === undefined || value === "") return;
  dl.append(el("dt", "", label), el("dd", "", value));
}

function alarmCard(a) {
  const li = el("li", `card alarm p-${a.priority}`);
  li.dataset.eventId = a.event_id;
  li.dataset.route = a.route;
  const head = el("div", "head");
  head.append(el("span", `badge p-${a.priority}`, a.priority), el("span", "what", a.label || a.type),
    el("span", "age", ""));
  const dl = el("dl");
  field(dl, "Residence", `${a.hub} · resident ${a.resident}`);
  field(dl, "Room", a.room || "—");
  field(dl, "Route", ROUTES[a.route] || a.route);
  field(dl, "Device", `${a.device} (${a.kind})`);
  if (a.cause_chain && a.cause_chain.length) field(dl, "Cause", [...a.cause_chain.map((c) => c.type), a.type].join(" → "));
  if (a.alarms > 1) field(dl, "Presses", a.alarms);
  if (a.reminders) field(dl, a.type === "checkin.missed" ? "Re-alerts" : "Reminders", a.reminders);
  field(dl, "Received", clock(a.received));
  const button = el("button", "ack", "Acknowledge");
  button.type = "button";
  button.addEventListener("click", () => ack(a.event_id));
  const reply = el("p", "reply");
  reply.setAttribute("role", "status");
  li.append(head, dl, button, reply);
  return li;
}

// Cards are kept per alarm and only rebuilt when the alarm changed, so that a tap on Acknowledge
// is never lost to a re-render caused by something else (a hub's heartbeat).
const cards = new Map(); // event_id -> {alarm, li}

function renderAlarms() {
  const list = $("alarms");
  const alarms = [...state.alarms.values()].sort(
    (x, y) => (RANK[x.priority] ?? 9) - (RANK[y.priority] ?? 9) || Date.parse(x.ts) - Date.parse(y.ts));
  const wanted = alarms.map((a) => {
    let card = cards.get(a.event_id);
    if (!card || card.alarm !== a) { card = { alarm: a, li: alarmCard(a) }; cards.set(a.event_id, card); }
    const busy = state.pending.has(a.event_id);
    const button = card.li.querySelector(".ack");
    button.disabled = busy;
    button.textContent = busy ? "Sending…" : "Acknowledge";
    const r = state.replies.get(a.event_id);
    const p = card.li.querySelector(".reply");
    p.textContent = r ? r.text : "";
    p.classList.toggle("error", Boolean(r && r.error));
    return card.li;
  });
  for (const id of cards.keys()) if (!state.alarms.has(id)) cards.delete(id);
  const same = wanted.length === list.children.length && wanted.every((li, i) => list.children[i] === li);
  if (!same) list.replaceChildren(...wanted);
  $("alarm-count").textContent = String(alarms.length);
  document.title = alarms.length ? `(${alarms.length}) Alarm central · carehub` : "Alarm central · carehub";
  $("no-alarms").hidden = alarms.length > 0;
}

function renderHubs() {
  const hubs = [...state.hubs.values()].sort((x, y) => (HUB_ORDER[x.state] ?? 9) - (HUB_ORDER[y.state] ?? 9) || x.hub.localeCompare(y.hub));
  $("hubs").replaceChildren(...hubs.map((h) => {
    const li = el("li", `card hub s-${h.state}`);
    li.dataset.hub = h.hub;
    const head = el("div", "head");
    head.append(el("span", "what", h.hub), el("span", "state", h.state));
    const dl = el("dl");
    field(dl, "Why", h.reason);
    const hb = el("span", "heartbeat", "");
    hb.dataset.ts = h.last_heartbeat || "";
    dl.append(el("dt", "", "Heartbeat"));
    const dd = el("dd");
    dd.append(hb);
    dl.append(dd);
    field(dl, "Level", duration(h.level_s * 1000));
    field(dl, "Last seq", h.seq_last);
    if (h.gaps_open) field(dl, "Gaps open", h.gaps_open);
    if (h.lost) field(dl, "Events lost", h.lost);
    li.append(head, dl);
    return li;
  }));
  $("no-hubs").hidden = hubs.length > 0;
}

function renderProblems() {
  const problems = [...state.problems.values()].sort((x, y) => x.hub.localeCompare(y.hub) || x.device.localeCompare(y.device));
  $("problems").replaceChildren(...problems.map((p) => {
    const li = el("li", "card problem");
    li.dataset.key = problemKey(p);
    const head = el("div", "head");
    head.append(el("span", "what", p.problem.replaceAll("_", " ")), el("span", "", p.hub));
    const dl = el("dl");
    field(dl, "Device", `${p.device} (${p.kind})`);
    field(dl, "Room", p.room || "—");
    field(dl, "Since", clock(p.since));
    field(dl, "Detail", p.detail);
    li.append(head, dl);
    return li;
  }));
  $("no-problems").hidden = problems.length > 0;
}

function render() { renderAlarms(); renderHubs(); renderProblems(); tick(); }

function tick() {
  for (const li of $("alarms").children) {
    const a = state.alarms.get(li.dataset.eventId);
    if (a) li.querySelector(".age").textContent = since(a.ts);
  }
  for (const span of document.querySelectorAll(".heartbeat")) {
    span.textContent = span.dataset.ts ? `${since(span.dataset.ts)} ago (${clock(span.dataset.ts)})` : "none yet";
  }
}

// --- start ---------------------------------------------------------------------------------------------

function start() {
  state.route = routeFromUrl();
  showFilter();
  $("operator").value = localStorage.getItem("operator") || "";
  for (const a of document.querySelectorAll(".filter a")) {
    a.addEventListener("click", (e) => {
      e.preventDefault();
      setRoute(a.dataset.route === "all" ? null : a.dataset.route);
    });
  }
  window.addEventListener("popstate", () => { state.route = routeFromUrl(); showFilter(); loadSnapshot(); });
  render();
  connect();
  setInterval(tick, 1000);
}

start();
