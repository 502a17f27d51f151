// VLMFlux live page: one card per stream from GET /v1/streams, its events over SSE (GET /v1/streams/ID/events),
// questions with POST /v1/streams/ID/questions. Everything from the server is shown with textContent (never parsed
// as HTML), and stream ids are URL-encoded into paths.
"use strict";

const MAX_CAPTIONS = 20, MAX_ALERTS = 20, MAX_ANSWERS = 5;
const cards = new Map();

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
  node.querySelector(".view").src = streamPath(stream.id, "view.mjpeg");
  const c = {
    node, id: stream.id,
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
  listen(c);
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

function listen(c) {
  const es = new EventSource(streamPath(c.id, "events"));
  c.events = es;
  es.onmessage = m => {
    let ev;
    try { ev = JSON.parse(m.data); } catch (e) { return; }
    onEvent(c, ev);
  };
  es.onopen = () => c.node.classList.remove("disconnected");
  es.onerror = () => c.node.classList.add("disconnected");
}

async function ask(c, input) {
  const question = input.value.trim();
  if (!question) return;
  input.value = "";
  const pending = answerNode(c, "pending-" + Date.now(), question);
  pending.text.textContent = "…";
  try {
    const r = await fetch(streamPath(c.id, "questions"), {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ question })
    });
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
    + " (all clients " + s.events.dropped + ")" + (s.error ? " · error: " + s.error : "");
}

async function refresh() {
  const status = document.getElementById("server-status");
  try {
    const r = await fetch("/v1/streams");
    if (!r.ok) throw new Error("HTTP " + r.status);
    const list = await r.json();
    for (const s of list.data) showStats(cards.get(s.id) || card(s), s);
    // streams come and go at run time (serve --fleet: cameras assigned to and revoked from this node)
    const ids = new Set(list.data.map(s => s.id));
    for (const [id, c] of cards) if (!ids.has(id)) { c.events.close(); c.node.remove(); cards.delete(id); }
    status.textContent = list.data.length + " stream(s) · updated " + new Date().toLocaleTimeString();
    if (list.data.length === 0) status.textContent = "no live streams (start with --source SPEC)";
  } catch (e) {
    status.textContent = "server unreachable: " + e.message;
  }
}

refresh();
setInterval(refresh, 2000);
