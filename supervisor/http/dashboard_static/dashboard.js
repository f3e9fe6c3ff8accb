"use strict";
// The callfleet dashboard. It polls the supervisor's own JSON routes once a second (the same
// ones any API client uses, with the bearer key when one is set) and redraws its tables in
// place, so that a button under the pointer is not replaced while it is being clicked.

const KEY_STORAGE = "callfleet.apiKey";
const POLL_MS = 1000;
const FINISHED = new Set(["ended", "failed"]);
const ENDED_SHOWN = 10;
const LOG_LINES_KEPT = 1000;

class NeedsKey extends Error {}

const $ = (id) => document.getElementById(id);

// -- the key ---------------------------------------------------------------------------------

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: "Bearer " + key } : {};
}

function showKeyPrompt(needed) {
  $("auth").hidden = !needed;
  if (needed) {
    $("auth-message").textContent = apiKey()
      ? "This supervisor needs its API key: the key entered was refused."
      : "This supervisor needs its API key.";
    $("updated").textContent = "waiting for the API key";
  }
}

$("auth-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, $("auth-key").value.trim());
  $("auth-key").value = "";
  refreshNow();
});

// -- requests --------------------------------------------------------------------------------

async function request(method, path, accepted = [200]) {
  const resp = await fetch(path, { method, headers: authHeaders(), cache: "no-store" });
  if (resp.status === 401) throw new NeedsKey();
  if (!accepted.includes(resp.status)) throw new Error(`${method} /${path}: ${await errorText(resp)}`);
  return resp.json();
}

async function errorText(resp) {
  try {
    const body = await resp.json();
    return `${resp.status} ${body.info || body.error || ""}`.trim();
  } catch {
    return `${resp.status} ${resp.statusText}`;
  }
}

function sessionPath(sessionId, tail = "") {
  return "sessions/" + encodeURIComponent(sessionId) + tail;
}

// -- formatting ------------------------------------------------------------------------------

function dash(value) {
  return value === null || value === undefined || value === "" ? "—" : String(value);
}

function clock(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "—";
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), rest = s % 60;
  const mmss = `${String(m).padStart(h ? 2 : 1, "0")}:${String(rest).padStart(2, "0")}`;
  return h ? `${h}:${mmss}` : mmss;
}

function counts(byState) {
  const parts = Object.entries(byState || {}).map(([name, n]) => `${name} ${n}`);
  return parts.length ? parts.join(", ") : "none";
}

function sessionStart(s) {
  return s.joined_at || s.assigned_at || s.requested_at;
}

function people(s) {
  const list = s.participants || [];
  return list.length ? `${list.length}: ${list.map((p) => p.name || p.id).join(", ")}` : "0";
}

// Voice-to-voice per turn (seconds), from the session detail's ``turns``: null until a
// Pipecat pipeline has measured a turn, and absent from a record written before turn figures.
function voiceToVoice(s, quantile) {
  const figures = s.turns ? s.turns.voice_to_voice_s : null;
  const value = figures ? figures[quantile] : null;
  return typeof value === "number" ? `${Math.round(value * 1000)} ms` : "—";
}

function sandboxState(sandbox) {
  if (sandbox === null || sandbox === undefined) return "—";
  return typeof sandbox === "string" ? sandbox : dash(sandbox.state);
}

// -- tables, redrawn in place ------------------------------------------------------------------
// A row is {key, cells}; a cell is a string, or {text, cls}, or {buttons: [...]} of
// {label, action, cls} and links {label, href}.

function cellSignature(cell) {
  return JSON.stringify(cell);
}

function fillCell(td, cell) {
  td.replaceChildren();
  td.className = "";
  if (typeof cell === "string") {
    td.textContent = cell;
    return;
  }
  if (cell.buttons) {
    for (const b of cell.buttons) {
      if (b.href) {
        const a = document.createElement("a");
        a.href = b.href;
        a.textContent = b.label;
        a.target = "_blank";
        a.rel = "noopener";
        td.append(a);
      } else {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = b.label;
        button.dataset.action = b.action;
        if (b.cls) button.className = b.cls;
        if (b.disabled) button.disabled = true;
        td.append(button);
      }
    }
    return;
  }
  td.textContent = cell.text;
  if (cell.cls) td.className = cell.cls;
}

function renderTable(tableId, rows) {
  const tbody = $(tableId).tBodies[0];
  const existing = new Map([...tbody.rows].map((tr) => [tr.dataset.key, tr]));
  let previous = null;
  for (const row of rows) {
    let tr = existing.get(row.key);
    existing.delete(row.key);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.key = row.key;
    }
    row.cells.forEach((cell, i) => {
      const td = tr.cells[i] || tr.insertCell(i);
      const signature = cellSignature(cell);
      if (td.dataset.signature !== signature) {
        fillCell(td, cell);
        td.dataset.signature = signature;
      }
    });
    const wanted = previous ? previous.nextSibling : tbody.firstChild;
    if (wanted !== tr) tbody.insertBefore(tr, wanted);
    previous = tr;
  }
  for (const tr of existing.values()) tr.remove();
}

const mono = (text) => ({ text: dash(text), cls: "id" });
const stateCell = (state) => ({ text: dash(state), cls: `state-${state}` });

function renderNodes(health, nodeId, sessions) {
  const rows = [{ key: nodeId, cells: [mono(nodeId), stateCell(health.state), stateCell(health.status),
    counts(health.workers), counts(health.sessions), dash(health.capacity), sandboxState(health.sandbox)] }];
  // This node's figures are its own; in a cluster the listing holds every node's sessions,
  // so the other nodes that run live ones are shown with their count.
  const others = new Map();
  for (const s of sessions) {
    if (s.node_id && s.node_id !== nodeId && !FINISHED.has(s.state)) {
      others.set(s.node_id, (others.get(s.node_id) || 0) + 1);
    }
  }
  for (const [id, live] of [...others.entries()].sort()) {
    rows.push({ key: id, cells: [mono(id), "—", "—", "—", `live ${live}`, "—", "—"] });
  }
  renderTable("nodes", rows);
}

function renderWorkers(workers) {
  renderTable("workers", workers.map((w) => ({
    key: w.id,
    cells: [mono(w.id), dash(w.pid), dash(w.lane), stateCell(w.state), mono(w.session_id), dash(w.pss_mb), clock(w.uptime_s),
      dash(w.calls_done)],
  })));
}

function renderLive(sessions, now) {
  const live = new Set(sessions.map((s) => s.session_id));
  for (const id of stopsAsked) if (!live.has(id)) stopsAsked.delete(id); // over: nothing more to show
  renderTable("live", sessions.map((s) => {
    const stopping = stopsAsked.has(s.session_id) || s.state === "leaving";
    return {
      key: s.session_id,
      cells: [mono(s.session_id), dash(s.profile), stateCell(s.state), clock(now - sessionStart(s)), people(s),
        voiceToVoice(s, "p50"), voiceToVoice(s, "p99"), mono(s.node_id), mono(s.worker_id),
        { buttons: [
          { label: "logs", action: "logs" },
          { label: stopping ? "stopping…" : "stop", action: "stop", cls: "stop", disabled: stopping },
          // A browser session waits for its browser at /talk; a room or a phone call is joined elsewhere.
          ...(s.transport === "webrtc" && !s.joined_at
            ? [{ label: "talk", href: "talk?session=" + encodeURIComponent(s.session_id) }] : []),
        ] }],
    };
  }));
}

function renderEnded(sessions, now) {
  renderTable("ended", sessions.map((s) => ({
    key: s.session_id,
    cells: [mono(s.session_id), dash(s.profile), stateCell(s.state), dash(s.end_reason),
      clock(s.ended_at - sessionStart(s)), s.ended_at ? `${clock(now - s.ended_at)} ago` : "—",
      { buttons: [{ label: "logs", action: "logs" }] }],
  })));
}

function setError(text) {
  $("error").hidden = !text;
  $("error").textContent = text || "";
}

// -- polling ---------------------------------------------------------------------------------

let timer = null;
let running = false;

async function refresh() {
  running = true;
  try {
    const [health, workers, listing] = await Promise.all([
      request("GET", "healthz", [200, 503]), // a 503 still describes the node
      request("GET", "workers"),
      request("GET", "sessions"),
    ]);
    const live = listing.data.filter((s) => !FINISHED.has(s.state));
    // The detail has what a listing may leave out (the turn figures); a session that ended
    // meanwhile keeps its listing entry until the next poll.
    const details = await Promise.all(live.map((s) => request("GET", sessionPath(s.session_id)).catch((err) => {
      if (err instanceof NeedsKey) throw err;
      return s;
    })));
    const now = Date.now() / 1000;
    showKeyPrompt(false);
    renderNodes(health, workers.node_id, listing.data);
    renderWorkers(workers.data);
    renderLive(details.filter((s) => !FINISHED.has(s.state)), now);
    renderEnded(listing.data.filter((s) => FINISHED.has(s.state)).slice(0, ENDED_SHOWN), now);
    setError(null);
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    if (err instanceof NeedsKey) showKeyPrompt(true);
    else setError(`The supervisor did not answer: ${err.message}`);
  } finally {
    running = false;
    timer = setTimeout(refresh, POLL_MS);
  }
}

function refreshNow() {
  if (running) return; // the poll under way reschedules itself
  clearTimeout(timer);
  refresh();
}

// -- actions ---------------------------------------------------------------------------------

const stopsAsked = new Set();

async function stopSession(sessionId) {
  stopsAsked.add(sessionId);
  try {
    await request("DELETE", sessionPath(sessionId));
  } catch (err) {
    stopsAsked.delete(sessionId);
    if (err instanceof NeedsKey) showKeyPrompt(true);
    else setError(`Could not stop ${sessionId}: ${err.message}`);
  }
  refreshNow();
}

let logsFollowed = null; // the AbortController of the log stream shown

function formatLogLine(text) {
  let line;
  try {
    line = JSON.parse(text);
  } catch {
    return text;
  }
  const { timestamp, level, event, session_id: _sid, ...rest } = line;
  const extra = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
  return [dash(timestamp), (level || "").padEnd(7), event, ...extra].join(" ");
}

function appendLogLine(text) {
  const pre = $("logs-lines");
  const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  const div = document.createElement("div");
  div.className = "log-line";
  div.textContent = formatLogLine(text);
  pre.append(div);
  while (pre.childElementCount > LOG_LINES_KEPT) pre.firstElementChild.remove();
  if (stick) pre.scrollTop = pre.scrollHeight;
}

async function openLogs(sessionId) {
  closeLogs();
  const controller = new AbortController();
  logsFollowed = controller;
  $("logs").hidden = false;
  $("logs-session").textContent = sessionId;
  $("logs-lines").replaceChildren();
  $("logs-note").textContent = "loading…";
  try {
    const resp = await fetch(sessionPath(sessionId, "/logs?tail=200&follow=1"),
      { headers: authHeaders(), cache: "no-store", signal: controller.signal });
    if (resp.status === 401) {
      showKeyPrompt(true);
      $("logs-note").textContent = "The logs need the API key.";
      return;
    }
    if (!resp.ok) {
      $("logs-note").textContent = `No logs for this session: ${await errorText(resp)}`;
      return;
    }
    $("logs-note").textContent = "following (the last 200 lines, then live)";
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      const lines = pending.split("\n");
      pending = lines.pop();
      for (const line of lines) if (line.trim()) appendLogLine(line);
    }
    if (pending.trim()) appendLogLine(pending);
    $("logs-note").textContent = "end of the log";
  } catch (err) {
    if (err.name !== "AbortError") $("logs-note").textContent = `The log stream broke off: ${err.message}`;
  }
}

function closeLogs() {
  if (logsFollowed) logsFollowed.abort();
  logsFollowed = null;
  $("logs").hidden = true;
}

$("logs-close").addEventListener("click", closeLogs);

for (const tableId of ["live", "ended"]) {
  $(tableId).addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const sessionId = button.closest("tr").dataset.key;
    if (button.dataset.action === "stop") stopSession(sessionId);
    else if (button.dataset.action === "logs") openLogs(sessionId);
  });
}

refresh();
