// The live page: one EventSource on /api/events; no framework, no build step.
"use strict";

const cards = new Map();

function text(root, selector, value) {
  root.querySelector(selector).textContent = value;
}

function number(value, digits) {
  return value === null || value === undefined ? "-" : value.toFixed(digits);
}

function card(name) {
  let root = cards.get(name);
  if (!root) {
    root = document.getElementById("camera-card").content.firstElementChild.cloneNode(true);
    root.dataset.camera = name;
    root.dataset.shownSeq = "0";
    text(root, ".name", name);
    document.getElementById("cameras").appendChild(root);
    cards.set(name, root);
  }
  return root;
}

// A new frame is asked for only when a newer decision exists and the previous image has loaded;
// the server caps its encoding rate, so a slow viewer gets fewer frames, never a backlog.
function refreshFrame(root, name, seq) {
  const img = root.querySelector(".frame");
  if (seq === 0 || String(seq) === root.dataset.shownSeq || img.dataset.loading === "1") return;
  img.dataset.loading = "1";
  img.onload = img.onerror = () => { img.dataset.loading = "0"; };
  root.dataset.shownSeq = String(seq);
  img.src = "/frame.jpg?camera=" + encodeURIComponent(name) + "&seq=" + seq;
}

function showCamera(name, cam, verdicts) {
  const root = card(name);
  const state = root.querySelector(".state");
  state.textContent = cam.state;
  state.className = "state badge " + cam.state;
  const verdict = root.querySelector(".verdict");
  verdict.textContent = cam.verdict || "-";
  verdict.className = "verdict badge " + (cam.verdict || "");
  text(root, ".score", number(cam.score, 3));
  text(root, ".frame-id", cam.frame_id === null ? "-" : String(cam.frame_id));
  for (const v of verdicts) text(root, ".count-" + v, String(cam.decisions[v]));
  text(root, ".yield", cam.yield === null ? "-" : (100 * cam.yield).toFixed(1) + " %");
  text(root, ".fps", number(cam.fps, 1));
  text(root, ".latency", number(cam.latency_p50_ms, 1) + " / " + number(cam.latency_p99_ms, 1) + " ms");
  text(root, ".dropped", String(cam.dropped));
  text(root, ".reconnects", String(cam.reconnects));
  text(root, ".engine", cam.engine);
  text(root, ".model", cam.model_id || "-");
  refreshFrame(root, name, cam.seq);
}

// Thumbnails already shown are kept (moved, not reloaded): only a new FAIL's image is fetched.
function showFails(fails) {
  const strip = document.getElementById("fails");
  const shown = new Map([...strip.querySelectorAll("a.fail")].map((link) => [link.getAttribute("href"), link]));
  const links = fails.map((f) => shown.get(f.image) || failLink(f));
  if (links.length === 0) {
    strip.innerHTML = '<p class="empty">no FAIL saved yet</p>';
    return;
  }
  strip.replaceChildren(...links);
}

function failLink(f) {
  const link = document.createElement("a");
  link.href = f.image;
  link.target = "_blank";
  link.className = "fail";
  const thumb = document.createElement("img");
  thumb.src = f.heatmap;
  thumb.alt = f.camera + " frame " + f.frame_id;
  link.append(thumb, f.camera + " #" + f.frame_id + " " + number(f.score, 2));
  return link;
}

function show(status) {
  text(document, "#run-id", status.run_id);
  const ready = document.getElementById("ready");
  ready.textContent = status.ready ? "ready" : "not ready";
  ready.className = "badge " + (status.ready ? "ready" : "not-ready");
  text(document, "#reasons", status.reasons.join("; "));
  for (const [name, cam] of Object.entries(status.cameras)) showCamera(name, cam, status.verdicts);
  showFails(status.fails);
}

const events = new EventSource("/api/events");
events.onmessage = (event) => show(JSON.parse(event.data));
events.onerror = () => {
  const ready = document.getElementById("ready");
  ready.textContent = "disconnected";
  ready.className = "badge not-ready";
};
