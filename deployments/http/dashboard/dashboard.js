// The live dashboard: one EventSource on /v1/live/stream, plain DOM and canvas, no build step.
"use strict";

// Access: an analyst key typed into the sign-in form is kept in this page's memory only; it
// buys short-lived session tokens (POST /v1/session), and only a token goes into the live
// stream's URL. With no keys configured the service answers "auth: off" and no form shows.
let apiKey = null;
let token = null;
const auth = () => (token ? { Authorization: `Bearer ${token}` } : {});
const $ = (id) => document.getElementById(id);
const fmt = (n, d = 0) => (n === null || n === undefined ? "–" : Number(n).toLocaleString(undefined, { maximumFractionDigits: d, minimumFractionDigits: d }));

function text(el, value) { el.textContent = value; }

function reasonText(item) {
  const parts = (item.reasons || []).map((r) => `${r.feature}=${fmt(r.value, 2)} (+${fmt(r.contribution, 2)})`);
  for (const rule of item.rules || []) parts.push(`rule ${rule}`);
  return parts.join("; ") || "–";
}

function drawTimeline(canvas, timeline) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 28;
  ctx.clearRect(0, 0, w, h);
  if (!timeline.length) return;
  const last = timeline[timeline.length - 1][0];
  const first = last - 119;
  const max = Math.max(1, ...timeline.map((r) => r[1]));
  const x = (s) => pad + ((s - first) / 119) * (w - pad - 6);
  const y = (v) => h - 18 - (v / max) * (h - 30);
  ctx.strokeStyle = "#d9dee5"; ctx.beginPath(); ctx.moveTo(pad, y(0)); ctx.lineTo(w, y(0)); ctx.stroke();
  ctx.fillStyle = "#6b7785"; ctx.font = "11px system-ui"; ctx.fillText(fmt(max), 2, y(max) + 4); ctx.fillText("0", 2, y(0));
  for (const [col, colour] of [[1, "#1f77b4"], [2, "#ef6c00"], [3, "#c62828"]]) {
    ctx.strokeStyle = colour; ctx.lineWidth = col === 1 ? 2 : 1.5; ctx.beginPath();
    timeline.filter((r) => r[0] >= first).forEach((r, i) => (i ? ctx.lineTo(x(r[0]), y(r[col])) : ctx.moveTo(x(r[0]), y(r[col]))));
    ctx.stroke();
  }
}

function drawScores(canvas, hist) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, n = hist.counts.length;
  ctx.clearRect(0, 0, w, h);
  const logs = hist.counts.map((c) => Math.log10(1 + c));
  const max = Math.max(1e-9, ...logs);
  const bw = (w - 10) / n;
  hist.counts.forEach((c, i) => {
    const edge = hist.edges[i];
    ctx.fillStyle = edge >= 0.9 ? "#c62828" : edge >= 0.5 ? "#ef6c00" : "#2e7d32";
    const bh = (logs[i] / max) * (h - 30);
    ctx.fillRect(5 + i * bw, h - 18 - bh, bw - 2, bh);
  });
  ctx.fillStyle = "#6b7785"; ctx.font = "11px system-ui";
  ctx.fillText("0", 4, h - 4); ctx.fillText("0.5", w / 2 - 8, h - 4); ctx.fillText("1", w - 12, h - 4);
}

function fillFlagged(items) {
  const body = $("flagged").querySelector("tbody");
  body.replaceChildren(...items.slice(0, 15).map((item) => {
    const tr = document.createElement("tr");
    for (const [value, cls] of [[item.transaction_id], [item.decision, item.decision], [fmt(item.score, 3)], [fmt(item.amount, 2)], [reasonText(item)]]) {
      const td = document.createElement("td"); td.textContent = value; if (cls) td.className = cls; tr.append(td);
    }
    return tr;
  }));
}

async function resolve(txId, outcome) {
  const resp = await fetch(`v1/reviews/${encodeURIComponent(txId)}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...auth() },
    body: JSON.stringify({ outcome, analyst: "dashboard" }),
  });
  text($("resolve-status"), resp.ok ? `${txId} resolved as ${outcome}` : `${txId}: HTTP ${resp.status}`);
  const row = document.querySelector(`tr[data-tx="${CSS.escape(txId)}"]`);
  if (resp.ok && row) row.remove();
}

function fillReviews(items) {
  const body = $("reviews").querySelector("tbody");
  body.replaceChildren(...items.map((item) => {
    const tr = document.createElement("tr");
    tr.dataset.tx = item.transaction_id;
    for (const value of [item.transaction_id, fmt(item.score, 3), fmt(item.amount, 2), reasonText(item)]) {
      const td = document.createElement("td"); td.textContent = value; tr.append(td);
    }
    const td = document.createElement("td");
    for (const outcome of ["fraud", "legit"]) {
      const b = document.createElement("button");
      b.textContent = outcome; b.className = `resolve-${outcome}`;
      b.addEventListener("click", () => resolve(item.transaction_id, outcome));
      td.append(b);
    }
    tr.append(td);
    return tr;
  }));
}

function render(s) {
  text($("tps"), fmt(s.tps, 1));
  text($("total"), fmt(s.transactions));
  text($("count-legit"), fmt(s.decisions.LEGIT));
  text($("count-review"), fmt(s.decisions.REVIEW));
  text($("count-block"), fmt(s.decisions.BLOCK));
  text($("latency"), `${fmt(s.latency_ms.p50, 1)} / ${fmt(s.latency_ms.p99, 1)}`);
  text($("open-reviews"), fmt(s.reviews.open));
  text($("outcomes"), `${fmt(s.outcomes.frauds_caught)} / ${fmt(s.outcomes.frauds_missed)}`);
  text($("model-version"), s.model.version || "–");
  text($("thresholds"), `REVIEW > ${s.model.thresholds.review}, BLOCK > ${s.model.thresholds.block}`);
  text($("policy-version"), s.policy_version);
  drawTimeline($("timeline"), s.timeline);
  drawScores($("scores"), s.score_histogram);
  fillFlagged(s.recent_flagged);
  fillReviews(s.reviews.oldest);
}

let source = null;

function connect() {
  if (source) source.close();
  const url = "v1/live/stream" + (token ? `?access_token=${encodeURIComponent(token)}` : "");
  source = new EventSource(url);
  source.addEventListener("open", () => { text($("connection"), "live"); $("connection").className = "status on"; });
  source.addEventListener("live", (e) => render(JSON.parse(e.data)));
  // The service ends the stream when its token expires or its key is revoked: ask again.
  source.addEventListener("end", () => { source.close(); openSession(); });
  source.addEventListener("error", () => { text($("connection"), "reconnecting…"); $("connection").className = "status off"; });
}

async function openSession() {
  const headers = apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
  const resp = await fetch("v1/session", { method: "POST", headers });
  if (resp.status === 401 || resp.status === 403) {
    const tried = apiKey !== null;
    apiKey = null; token = null;
    $("signin").hidden = false;
    const why = resp.status === 403 ? "this key lacks the analyst scope" : "unknown or revoked key";
    text($("signin-status"), tried ? why : "");
    return;
  }
  const session = await resp.json();
  token = session.token;
  $("signin").hidden = true;
  connect();
  if (token) {  // a fresh token before this one expires; the stream reconnects with it
    const ms = Math.max(10_000, (session.expires * 1000 - Date.now()) * 0.8);
    setTimeout(openSession, ms);
  }
}

$("signin").addEventListener("submit", (e) => {
  e.preventDefault();
  apiKey = $("signin-key").value.trim();
  $("signin-key").value = "";
  openSession();
});

openSession();
