// VLMFlux live page: one card per stream from GET /v1/streams, its events over SSE (GET /v1/streams/ID/events),
// questions with POST /v1/streams/ID/questions. Everything from the server is shown with textContent (never parsed
// as HTML), and stream ids are URL-encoded into paths.
// With --api-key every /v1 request needs "Authorization: Bearer KEY": the page asks for the key when the server
// answers 401, keeps it in this tab's sessionStorage only, and sends it as that header on every request — the
// events are read with fetch() and a stream reader (EventSource cannot send headers), the live view is fetched
// frame by frame (an <img> cannot either). The key never goes into a URL.
"use strict";

const MAX_CAPTIONS = 20, MAX_ALERTS = 20, MAX_ANSWERS = 5, RETRY_MS = 2000, KEY_ITEM = "vlmflux.apiKey";
const cards = new Map();
let apiKey = sessionStorage.getItem(KEY_ITEM);

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (apiKey) h["Authorization"] = "Bearer " + apiKey;
  return h;
}

/** Shows the key form; called when the server answers 401. */
function needKey(message) {
  const form = document.getElementById("key-form");
  form.hidden = false;
  document.getElementById("key-message").textContent = message || "This server needs an API key.";
  document.getElementById("server-status").textContent = "API key required";
}

function useKey(ev) {
  ev.preventDefault();
  const input = document.getElementById("api-key");
  const key = input.value.trim();
  if (!key) return;
  apiKey = key;
  sessionStorage.setItem(KEY_ITEM, key);
  input.value = "";
  document.getElementById("key-form").hidden = true;
  for (const c of cards.values()) connect(c);
  refresh();
}

async function errorMessage(r) {
  try { const b = await r.json(); return (b.error && b.error.message) || ("HTTP " + r.status); } catch (e) { return "HTTP " + r.status; }
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function streamPath(id, rest) { return "/v1/streams/" + encodeURIComponent(id) + (rest ? "/" + rest : ""); }

function trim(list, max) { while (list.children.length > max) list.removeChild(list.lastElementChild); }

function card(stream) {
  const node = document.getElementById("stream-template").content.firstElementChild.cloneNode(true);
  node.dataset.stream = stream.id;
  node.querySelector(".stream-id").textContent = stream.id;
  node.querySelector(".stream-source").textContent = stream.source;
  const c = {
    node, id: stream.id,
    view: node.querySelector(".view"),
    status: node.querySelector(".stream-status"),
    tokens: node.querySelector(".tokens"),
    captions: node.querySelector(".captions"),
    answers: node.querySelector(".answers"),
    alerts: node.querySelector(".alerts"),
    stats: node.querySelector(".stats tbody"),
    counters: node.querySelector(".counters"),
    answerNodes: new Map(),
    droppedEvents: 0,
    tokenFrame: -1,
  };
  node.querySelector("form.ask").addEventListener("submit", ev => { ev.preventDefault(); ask(c, node.querySelector(".question")); });
  if (stream.last_caption) addCaption(c, stream.last_caption);
  document.getElementById("streams").appendChild(node);
  cards.set(stream.id, c);
  connect(c);
  return c;
}

function addCaption(c, ev) {
  const li = el("li", "caption", ev.text);
  li.appendChild(el("span", "meta", "frame " + ev.frame + (ev.timings ? " · " + Math.round(ev.timings.total_ms) + " ms" : "")));
  c.captions.insertBefore(li, c.captions.firstChild);
  trim(c.captions, MAX_CAPTIONS);
}

function answerNode(c, id, question) {
  let a = c.answerNodes.get(id);
  if (!a) {
    const box = el("div", "answer");
    box.dataset.answer = id;
    box.appendChild(el("div", "q", question ? "Q: " + question : "Q"));
    const text = el("div", "a");
    box.appendChild(text);
    c.answers.insertBefore(box, c.answers.firstChild);
    trim(c.answers, MAX_ANSWERS);
    a = { box, text };
    c.answerNodes.set(id, a);
  }
  return a;
}

function onEvent(c, ev) {
  switch (ev.type) {
    case "token":
      if (ev.frame !== c.tokenFrame) { c.tokenFrame = ev.frame; c.tokens.textContent = ""; }
      c.tokens.textContent += ev.delta;
      break;
    case "caption":
      c.tokens.textContent = ev.text;
      addCaption(c, ev);
      break;
    case "narration": {   // a live-video session's narration over its window (serve --live --live-narrate)
      const li = el("li", "caption narration", ev.text);
      li.appendChild(el("span", "meta", "window " + (ev.window_start_s === null ? "—" : ev.window_start_s.toFixed(1) + "–" + ev.window_end_s.toFixed(1) + " s")
        + " · " + Math.round(ev.total_ms) + " ms"));
      c.captions.insertBefore(li, c.captions.firstChild);
      trim(c.captions, MAX_CAPTIONS);
      break;
    }
    case "answer": {
      const a = answerNode(c, ev.id, ev.question);
      if (ev.state === "token") a.text.textContent += ev.delta;
      else if (ev.state === "done") { a.text.textContent = ev.text; a.box.dataset.done = "true"; }
      else if (ev.state === "failed") { a.box.classList.add("failed"); a.text.textContent = ev.message; a.box.dataset.done = "true"; }
      break;
    }
    case "alert": {
      const none = c.alerts.querySelector(".none");
      if (none) none.remove();
      const li = el("li", "alert", (ev.message || ev.text || ev.rule || "alert") + " · " + new Date(ev.time_ms).toLocaleTimeString());
      c.alerts.insertBefore(li, c.alerts.firstChild);
      trim(c.alerts, MAX_ALERTS);
      break;
    }
    case "dropped":
      c.droppedEvents += ev.count;
      break;
    default:
      if (ev.type && ev.type.startsWith("source_")) {
        c.status.textContent = ev.type.substring(7);
      }
  }
}

/** (Re)starts the stream's event reader and live view, with the current key. */
function connect(c) {
  if (c.events) c.events.abort();
  clearTimeout(c.retry);
  c.events = new AbortController();
  listen(c, c.events.signal);
  clearTimeout(c.viewTimer);
  c.viewTimer = undefined;
  if (apiKey) pollView(c, c.events.signal);      // an <img> cannot send the key: fetch the newest frame instead
  else c.view.src = streamPath(c.id, "view.mjpeg");
}

/** Reads GET /v1/streams/ID/events with fetch (so the Authorization header goes along) and parses the SSE text. */
async function listen(c, signal) {
  try {
    const r = await fetch(streamPath(c.id, "events"), { headers: headers({ "Accept": "text/event-stream" }), cache: "no-store", signal });
    if (r.status === 401) { c.node.classList.add("disconnected"); needKey(await errorMessage(r)); return; }   // until a key is given
    if (!r.ok || !r.body) throw new Error("HTTP " + r.status);
    c.node.classList.remove("disconnected");
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let end;
      while ((end = buf.search(/\r?\n\r?\n/)) >= 0) {
        const block = buf.substring(0, end);
        buf = buf.substring(buf.indexOf("\n", buf.indexOf("\n", end) + 1) + 1);
        const data = block.split(/\r?\n/).filter(l => l.startsWith("data:")).map(l => l.substring(l.charAt(5) === " " ? 6 : 5)).join("\n");
        if (!data) continue;   // a comment (keep-alive) or an id line alone
        let ev;
        try { ev = JSON.parse(data); } catch (e) { continue; }
        onEvent(c, ev);
      }
    }
  } catch (e) {
    if (signal.aborted) return;
  }
  if (signal.aborted) return;
  c.node.classList.add("disconnected");
  c.retry = setTimeout(() => { if (!signal.aborted) listen(c, signal); }, RETRY_MS);
}

/** With a key: fetches the newest view JPEG a few times a second and shows it when its frame is new. */
function pollView(c, signal) {
  const tick = async () => {
    if (signal.aborted) return;
    try {
      const r = await fetch(streamPath(c.id, "frame.jpg"), { headers: headers(), cache: "no-store", signal });
      if (r.status === 401) { needKey(await errorMessage(r)); return; }
      const seq = r.headers.get("X-Frame-Sequence");
      if (r.ok && seq !== c.viewSeq) {
        c.viewSeq = seq;
        const url = URL.createObjectURL(await r.blob()), old = c.viewUrl;
        c.viewUrl = url;
        c.view.src = url;
        if (old) URL.revokeObjectURL(old);
      } else await r.arrayBuffer();
    } catch (e) {
      if (signal.aborted) return;
    }
    c.viewTimer = setTimeout(tick, 200);
  };
  tick();
}

async function ask(c, input) {
  const question = input.value.trim();
  if (!question) return;
  input.value = "";
  const pending = answerNode(c, "pending-" + Date.now(), question);
  pending.text.textContent = "…";
  try {
    const r = await fetch(streamPath(c.id, "questions"), {
      method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify({ question })
    });
    if (r.status === 401) needKey();
    const body = await r.json();
    pending.box.remove();
    if (!r.ok) {
      const a = answerNode(c, "error-" + Date.now(), question);
      a.box.classList.add("failed");
      a.text.textContent = (body.error && body.error.message) || ("HTTP " + r.status);
      a.box.dataset.done = "true";
      return;
    }
    const a = answerNode(c, body.id, question);
    a.text.textContent = body.answer;
    a.box.dataset.done = "true";
  } catch (e) {
    pending.text.textContent = "failed: " + e.message;
    pending.box.classList.add("failed");
  }
}

function showStats(c, s) {
  c.status.textContent = s.status;
  c.status.className = "stream-status badge " + s.status;
  c.stats.replaceChildren();
  for (const st of s.stages) {
    const tr = el("tr");
    for (const v of [st.name, st.in, st.out, st.dropped, st.errors, st.latency_ms.p50, st.latency_ms.p90]) tr.appendChild(el("td", null, String(v)));
    c.stats.appendChild(tr);
  }
  c.counters.textContent = "source frames " + s.source_stats.produced + " (dropped " + s.source_stats.dropped + ") · view frames "
    + s.view.encoded + " · events " + s.events.published + " · events dropped for this page " + c.droppedEvents
    + " (all clients " + s.events.dropped + ")" + (s.error ? " · error: " + s.error : "")
    + (s.live_window ? " · live window " + s.live_window.window_groups + " groups (" + (s.live_window.window_start_s === null ? "empty"
      : s.live_window.window_start_s.toFixed(1) + "–" + s.live_window.window_end_s.toFixed(1) + " s") + "), groups dropped " + s.live_window.groups_dropped : "");
}

async function refresh() {
  const status = document.getElementById("server-status");
  try {
    const r = await fetch("/v1/streams", { headers: headers(), cache: "no-store" });
    if (r.status === 401) { needKey(await errorMessage(r)); return; }
    if (!r.ok) throw new Error("HTTP " + r.status);
    const list = await r.json();
    for (const s of list.data) showStats(cards.get(s.id) || card(s), s);
    // streams come and go at run time (serve --fleet: cameras assigned to and revoked from this node)
    const ids = new Set(list.data.map(s => s.id));
    for (const [id, c] of cards) if (!ids.has(id)) { if (c.events) c.events.abort(); clearTimeout(c.retry); clearTimeout(c.viewTimer); c.node.remove(); cards.delete(id); }
    status.textContent = list.data.length + " stream(s) · updated " + new Date().toLocaleTimeString();
    if (list.data.length === 0) status.textContent = "no live streams (start with --source SPEC)";
  } catch (e) {
    status.textContent = "server unreachable: " + e.message;
  }
}

document.getElementById("key-form").addEventListener("submit", useKey);
refresh();
setInterval(refresh, 2000);
