// The search page: plain DOM, no build step. Talks to /api/search, /api/search/frame,
// /api/thumbnails and /api/videos (see server.py).
"use strict";

const $ = (id) => document.getElementById(id);

/** 75.4 -> "01:15"; an hour or more -> "1:02:03". */
function formatTime(seconds) {
  const total = Math.max(0, Math.floor(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${pad(m)}:${pad(s)}`;
}

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

async function fetchJson(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail : response.statusText;
    throw new Error(detail);
  }
  return body;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderHits(hits) {
  const list = $("results");
  list.replaceChildren();
  for (const hit of hits) {
    const item = el("li", "hit");
    item.tabIndex = 0;
    item.dataset.videoId = hit.video_id;
    item.dataset.start = String(hit.start_s);
    item.dataset.segmentId = hit.segment_id;

    const thumb = el("img", "thumb");
    thumb.src = hit.thumbnail_url;
    thumb.alt = `${hit.video_id} at ${formatTime(hit.start_s)}`;
    thumb.loading = "lazy";
    thumb.width = 160;
    thumb.height = 90;

    const body = el("div", "hit-body");
    const meta = el("div", "hit-meta");
    meta.append(
      el("span", "hit-video", hit.video_id),
      el("span", "hit-time", `${formatTime(hit.start_s)}–${formatTime(hit.end_s)}`),
      el("span", "hit-source", hit.source),
    );
    if (hit.language) meta.append(el("span", "hit-language muted", hit.language));
    meta.append(el("span", "hit-score", Number(hit.score).toFixed(3)));
    body.append(meta, el("p", "hit-text", hit.text || ""));
    item.append(thumb, body);

    item.addEventListener("click", () => play(hit, item));
    item.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        play(hit, item);
      }
    });
    list.append(item);
  }
}

function showResults(body, label) {
  renderHits(body.hits);
  const n = body.hits.length;
  setStatus(n === 0 ? `No results for ${label}.` : `${n} result${n === 1 ? "" : "s"} for ${label} in ${Math.round(body.took_ms)} ms`);
}

/** Open the hit's video in the player at its start and play it (muted: autoplay is allowed). */
function play(hit, item) {
  for (const active of document.querySelectorAll(".hit.active")) active.classList.remove("active");
  item.classList.add("active");
  $("player-panel").hidden = false;
  $("now-playing").textContent = `${hit.video_id} · ${formatTime(hit.start_s)}–${formatTime(hit.end_s)}`;

  const player = $("player");
  const src = hit.video_url.split("#")[0];
  const seekAndPlay = () => {
    player.currentTime = hit.start_s;
    player.muted = true;
    player.play().catch((error) => setStatus(`Cannot play ${hit.video_id}: ${error.message}`, true));
  };
  if (player.dataset.src === src && player.readyState >= HTMLMediaElement.HAVE_METADATA) {
    seekAndPlay();
    return;
  }
  player.dataset.src = src;
  player.addEventListener("loadedmetadata", seekAndPlay, { once: true });
  player.src = src;
  player.load();
}

async function search(event) {
  if (event) event.preventDefault();
  const q = $("q").value.trim();
  if (!q) {
    setStatus("Type something to search for.", true);
    return;
  }
  const params = new URLSearchParams({ q, k: "12", mode: $("mode").value });
  if ($("source").value) params.set("source", $("source").value);
  if ($("language").value) params.set("language", $("language").value);
  setStatus("Searching…");
  try {
    showResults(await fetchJson(`/api/search?${params}`), `“${q}”`);
  } catch (error) {
    $("results").replaceChildren();
    setStatus(error.message, true);
  }
}

async function searchFrame() {
  const file = $("frame").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("image", file);
  setStatus("Searching by frame…");
  try {
    showResults(await fetchJson("/api/search/frame?k=12", { method: "POST", body: form }), file.name);
  } catch (error) {
    $("results").replaceChildren();
    setStatus(error.message, true);
  }
}

async function loadStats() {
  try {
    const stats = await fetchJson("/api/stats");
    const parts = [];
    if (stats.videos !== undefined) parts.push(`${stats.videos} videos`);
    if (stats.rows !== undefined) parts.push(`${stats.rows} rows`);
    $("index-stats").textContent = parts.join(" · ");
    const languages = Array.isArray(stats.languages) ? stats.languages
      : Object.keys(stats.languages || {});
    const select = $("language");
    for (const language of languages.length ? languages : ["en", "zh"]) {
      const option = el("option", "", language);
      option.value = language;
      select.append(option);
    }
  } catch (error) {
    $("index-stats").textContent = `index unavailable: ${error.message}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", search);
  $("frame").addEventListener("change", searchFrame);
  for (const id of ["source", "language", "mode"]) {
    $(id).addEventListener("change", () => { if ($("q").value.trim()) search(); });
  }
  loadStats();
  $("q").focus();
});
