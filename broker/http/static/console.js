// The bridge's web console: plain JavaScript, no build step. It uses the public API with the
// key kept in localStorage: GET /api/v1/status (polled; charts are differences of its
// cumulative counters), GET/PUT /api/v1/sites, GET /api/v1/voices, and the WebSockets
// /api/v1/listen and /api/v1/speak (the key goes in `start` as authToken).
"use strict";

const KEY_STORAGE = "wvb.apiKey";
const POLL_MS = 2000;
const HISTORY = 90; // points per chart
const $ = (id) => document.getElementById(id);

const consoleState = {
  key: localStorage.getItem(KEY_STORAGE) || "",
  previous: null, // the last status answer
  latency: { stt: [], tts: [] },
  rate: { stt: [], tts: [] },
  modes: [],
  voicesLoaded: false,
};

class ApiFailure extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function authHeaders() {
  return consoleState.key ? { Authorization: "Bearer " + consoleState.key } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : response.statusText;
    throw new ApiFailure(response.status, message);
  }
  return body;
}

function notice(text) {
  const box = $("notice");
  box.textContent = text || "";
  box.hidden = !text;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function wsUrl(path) {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
}

// -- status: services, sessions, charts, errors ---------------------------------------
function renderServices(status) {
  const body = $("services").tBodies[0];
  body.replaceChildren();
  for (const service of status.services) {
    const row = body.insertRow();
    row.dataset.name = service.name;
    cell(row, service.name + (service.name !== service.uri ? " (" + service.uri + ")" : ""));
    cell(row, service.kinds.join(", ") || "?");
    cell(row, service.healthy ? "up" : "down", service.healthy ? "up" : "down");
    cell(row, [...service.models, ...service.voices].join(", "));
    cell(row, service.active + " active");
  }
  if (!status.services.length) cell(body.insertRow(), "no services known yet");
  const s = status.sessions;
  $("sessions-line").textContent = `Sessions: ${s.active} of ${s.max} (STT ${s.stt}, TTS ${s.tts}) · MQTT: ` +
    (status.mqtt.enabled ? (status.mqtt.connected ? "connected" : "not connected") : "off") +
    ` · version ${status.version}`;
  const state = $("bridge-state");
  state.textContent = status.ready ? "ready" : "starting";
  state.className = "pill " + (status.ready ? "up" : "down");
}

function pushPoint(series, value) {
  series.push(value);
  if (series.length > HISTORY) series.shift();
}

function updateSeries(status) {
  const previous = consoleState.previous;
  if (previous) {
    const minutes = Math.max(status.time - previous.time, 1e-3) / 60;
    for (const backend of ["stt", "tts"]) {
      const now = status.latency[backend], before = previous.latency[backend];
      const count = now.count - before.count;
      pushPoint(consoleState.latency[backend], count > 0 ? 1000 * (now.sum_s - before.sum_s) / count : null);
      pushPoint(consoleState.rate[backend], (status.requests[backend] - previous.requests[backend]) / minutes);
    }
  }
  consoleState.previous = status;
  const ms = (x) => (x === null ? "–" : Math.round(x * 1000) + " ms");
  const l = status.latency;
  $("totals-line").textContent = `Since start: STT ${status.requests.stt} requests (p50 ${ms(l.stt.p50_s)}, ` +
    `p95 ${ms(l.stt.p95_s)}), TTS ${status.requests.tts} requests (p50 ${ms(l.tts.p50_s)}, ` +
    `p95 ${ms(l.tts.p95_s)}), ${status.http_requests} HTTP requests, ${status.errors.total} errors`;
  drawChart($("latency-chart"), consoleState.latency, "ms");
  drawChart($("requests-chart"), consoleState.rate, "/min");
}

function niceTop(value) { // three gridlines of a round step: 1, 2 or 5 times a power of ten
  const rough = Math.max(value, 3) / 3;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough);
  return 3 * step;
}

function drawChart(canvas, series, unit) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 34;
  ctx.clearRect(0, 0, w, h);
  const values = [...series.stt, ...series.tts].filter((v) => v !== null);
  const top = niceTop(Math.max(0, ...values));
  ctx.strokeStyle = "#d9e2ec";
  ctx.fillStyle = "#616e7c";
  ctx.font = "11px system-ui, sans-serif";
  for (let i = 0; i <= 3; i++) {
    const y = h - pad / 2 - (h - pad) * i / 3;
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(w - 4, y); ctx.stroke();
    ctx.fillText(String(Math.round(top * i / 3)), 2, y + 4);
  }
  ctx.fillText(unit, 2, 10);
  const colours = { stt: "#1d4ed8", tts: "#c2410c" };
  for (const backend of ["stt", "tts"]) {
    const points = series[backend];
    ctx.strokeStyle = ctx.fillStyle = colours[backend];
    ctx.lineWidth = 2;
    ctx.beginPath();
    let drawing = false;
    points.forEach((v, i) => {
      const x = pad + (w - pad - 4) * i / Math.max(HISTORY - 1, 1);
      if (v === null) { drawing = false; return; }
      const y = h - pad / 2 - (h - pad) * v / top;
      if (drawing) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      drawing = true;
      ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
    });
    ctx.stroke();
    ctx.fillText(backend.toUpperCase(), w - 40, backend === "stt" ? 12 : 26);
  }
}

function renderErrors(status) {
  const body = $("errors").tBodies[0];
  body.replaceChildren();
  for (const error of status.errors.recent) {
    const row = body.insertRow();
    cell(row, new Date(error.at * 1000).toLocaleTimeString());
    cell(row, error.code, "down");
    cell(row, error.backend);
    cell(row, error.site);
    cell(row, error.message);
  }
  if (!status.errors.recent.length) cell(body.insertRow(), "none");
}

async function poll() {
  try {
    const status = await api("/api/v1/status");
    notice("");
    renderServices(status);
    updateSeries(status);
    renderErrors(status);
    if (!consoleState.voicesLoaded) await loadVoices(status);
    const editing = document.activeElement && document.activeElement.classList.contains("site-mode");
    if (!editing) await loadSites(); // the busy column follows the sessions
  } catch (err) {
    $("bridge-state").textContent = "unreachable";
    $("bridge-state").className = "pill down";
    notice(err.status === 401 ? "This bridge needs an API key: enter one above (wyoming-voice-broker keys create NAME)."
      : "Status not available: " + err.message);
  }
}

// -- sites ------------------------------------------------------------------------------
async function loadSites() {
  const answer = await api("/api/v1/sites");
  consoleState.modes = answer.modes;
  const body = $("sites").tBodies[0];
  body.replaceChildren();
  for (const entry of answer.sites) {
    const row = body.insertRow();
    row.dataset.site = entry.site;
    cell(row, entry.site);
    const select = document.createElement("select");
    select.className = "site-mode";
    for (const mode of answer.modes) select.add(new Option(mode, mode, false, mode === entry.settings.mode));
    select.addEventListener("change", () => setMode(entry.site, select));
    row.insertCell().append(select);
    cell(row, entry.settings.voice || "(default)");
    cell(row, entry.settings.language || "(auto)");
    cell(row, entry.settings.speed === null ? "1" : entry.settings.speed);
    cell(row, entry.busy ? "yes" : "no");
  }
  $("sites-line").textContent = answer.sites.length ? `Sites without settings use mode ${answer.default_mode}.`
    : "No sites yet (--sites, or a site's first settings/set).";
}

async function setMode(site, select) {
  select.disabled = true;
  try {
    await api("/api/v1/sites/" + encodeURIComponent(site), {
      method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ mode: select.value }),
    });
    $("sites-result").textContent = `Site ${site}: mode ${select.value} saved.`;
    await loadSites();
  } catch (err) {
    $("sites-result").textContent = `Site ${site}: ${err.message}`;
  } finally {
    select.disabled = false;
  }
}

// -- voices -----------------------------------------------------------------------------
async function loadVoices(status) {
  let names = [];
  try {
    const answer = await api("/api/v1/voices");
    const list = Array.isArray(answer) ? answer : answer.voices || answer.data || [];
    names = list.map((v) => (typeof v === "string" ? v : v.name || v.id)).filter(Boolean);
  } catch (err) {
    names = status.services.flatMap((s) => s.voices); // what the services describe
  }
  const select = $("tts-voice");
  for (const name of [...new Set(names)]) select.add(new Option(name, name));
  select.dataset.count = String(names.length);
  consoleState.voicesLoaded = true;
}

// -- try it: the microphone over /api/v1/listen ---------------------------------------------
const listen = { socket: null, context: null, stream: null, node: null, sent: 0, limit: 0, stopped: false,
  started: false, early: [], partials: 0 };

function sttState(state, text) {
  const el = $("stt-state");
  el.dataset.state = state;
  el.textContent = text || state;
}

async function startListening() {
  if (!navigator.mediaDevices || !window.AudioWorkletNode) {
    sttState("error", "the microphone needs HTTPS (or localhost) and a current browser");
    return;
  }
  $("stt-record").disabled = true;
  $("stt-partial").textContent = $("stt-final").textContent = "";
  try {
    listen.stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: false,
      noiseSuppression: false, autoGainControl: false } });
    try { listen.context = new AudioContext({ sampleRate: 16000 }); } catch (err) { listen.context = new AudioContext(); }
    await listen.context.audioWorklet.addModule("/console/pcm-capture.js");
  } catch (err) {
    sttState("error", "microphone: " + err.message);
    stopAudio();
    $("stt-record").disabled = false;
    return;
  }
  const rate = listen.context.sampleRate;
  // Capture from the first sample: frames that come before `started` wait in `early`.
  Object.assign(listen, { sent: 0, started: false, early: [], partials: 0 });
  $("stt-partial").dataset.count = "0";
  const source = listen.context.createMediaStreamSource(listen.stream);
  listen.node = new AudioWorkletNode(listen.context, "pcm-capture");
  listen.node.port.onmessage = (event) => sendAudio(event.data);
  source.connect(listen.node);
  listen.limit = Math.round(Number($("stt-seconds").value || 15) * rate) * 2; // bytes of PCM16 mono
  listen.stopped = false;
  const socket = listen.socket = new WebSocket(wsUrl("/api/v1/listen"));
  socket.binaryType = "arraybuffer";
  sttState("connecting");
  socket.onopen = () => {
    const start = { type: "start", sampleRate: rate, encoding: "pcm16", channels: 1 };
    const language = $("stt-language").value.trim();
    if (language) start.language = language;
    if (consoleState.key) start.authToken = consoleState.key;
    socket.send(JSON.stringify(start));
  };
  socket.onmessage = (event) => onListenMessage(JSON.parse(event.data));
  socket.onclose = () => {
    stopAudio();
    $("stt-record").disabled = false;
    $("stt-stop").disabled = true;
    if (!["done", "error"].includes($("stt-state").dataset.state)) sttState("closed");
  };
}

function onListenMessage(message) {
  if (message.type === "started") {
    sttState("recording", `recording at ${listen.context.sampleRate} Hz`);
    $("stt-stop").disabled = false;
    listen.started = true;
    const early = listen.early;
    listen.early = [];
    for (const buffer of early) sendAudio(buffer);
  } else if (message.type === "partial") {
    listen.partials += 1;
    $("stt-partial").dataset.count = String(listen.partials);
    $("stt-partial").textContent = message.text;
  } else if (message.type === "final") {
    $("stt-partial").textContent = ""; // the final replaces the guesses
    $("stt-final").textContent = message.text;
    sttState("done", `done (${message.language || "?"}, ${message.durationMs} ms of audio)`);
  } else if (message.type === "error") {
    sttState("error", `${message.code}: ${message.message}`);
  }
}

function sendAudio(buffer) {
  const socket = listen.socket;
  if (!listen.started) { if (!listen.stopped) listen.early.push(buffer); return; }
  if (listen.stopped || !socket || socket.readyState !== WebSocket.OPEN) return;
  const room = listen.limit - listen.sent;
  const piece = buffer.byteLength > room ? buffer.slice(0, room) : buffer;
  if (piece.byteLength) socket.send(piece);
  listen.sent += piece.byteLength;
  if (listen.sent >= listen.limit) stopListening(); // a count of samples, not a clock
}

function stopListening() {
  if (listen.stopped) return;
  listen.stopped = true;
  stopAudio();
  $("stt-stop").disabled = true;
  if (listen.socket && listen.socket.readyState === WebSocket.OPEN) {
    listen.socket.send(JSON.stringify({ type: "stop" }));
    sttState("transcribing", `transcribing ${(listen.sent / 2 / (listen.context ? listen.context.sampleRate : 16000)).toFixed(1)} s`);
  }
}

function stopAudio() {
  if (listen.node) { listen.node.port.onmessage = null; listen.node.disconnect(); listen.node = null; }
  if (listen.stream) { listen.stream.getTracks().forEach((t) => t.stop()); listen.stream = null; }
}

// -- try it: typed text over /api/v1/speak, played with Web Audio ---------------------------
const speak = { socket: null, context: null, rate: 0, at: 0, chunks: 0, bytes: 0, carry: null };

function ttsState(state, text) {
  const el = $("tts-state");
  el.dataset.state = state;
  el.dataset.chunks = String(speak.chunks);
  el.dataset.bytes = String(speak.bytes);
  el.textContent = (text || state) + ` · ${speak.chunks} chunks, ${speak.bytes} bytes received`;
}

function startSpeaking() {
  const text = $("tts-text").value;
  if (!text.trim()) return;
  if (speak.socket) speak.socket.close();
  speak.context = speak.context || new AudioContext();
  speak.context.resume();
  Object.assign(speak, { rate: 0, at: 0, chunks: 0, bytes: 0, carry: null });
  $("tts-state").dataset.playback = "no";
  $("tts-state").dataset.complete = "no";
  $("tts-speak").disabled = true;
  const socket = speak.socket = new WebSocket(wsUrl("/api/v1/speak"));
  socket.binaryType = "arraybuffer";
  ttsState("connecting");
  socket.onopen = () => {
    const start = { type: "start", encoding: "pcm16" };
    const voice = $("tts-voice").value;
    if (voice) start.voice = voice;
    if (consoleState.key) start.authToken = consoleState.key;
    socket.send(JSON.stringify(start));
  };
  socket.onmessage = (event) => {
    if (typeof event.data !== "string") { playChunk(event.data); return; }
    const message = JSON.parse(event.data);
    if (message.type === "started") {
      speak.rate = message.sampleRate;
      $("tts-state").dataset.rate = String(message.sampleRate);
      ttsState("speaking", `speaking with ${message.voice || "the default voice"} at ${message.sampleRate} Hz`);
      socket.send(JSON.stringify({ type: "speak", text }));
      socket.send(JSON.stringify({ type: "stop" }));
    } else if (message.type === "complete") {
      $("tts-state").dataset.complete = "yes";
      $("tts-state").dataset.audioLengthMs = String(message.audioLengthMs);
      ttsState("complete", `complete: ${message.audioLengthMs} ms of audio`);
    } else if (message.type === "error") {
      ttsState("error", `${message.code}: ${message.message}`);
    }
  };
  socket.onclose = () => { $("tts-speak").disabled = false; speak.socket = null; };
}

function playChunk(buffer) {
  speak.chunks += 1;
  speak.bytes += buffer.byteLength;
  let bytes = new Uint8Array(buffer);
  if (speak.carry) { // frames need not end on a sample boundary
    const joined = new Uint8Array(speak.carry.length + bytes.length);
    joined.set(speak.carry); joined.set(bytes, speak.carry.length);
    bytes = joined; speak.carry = null;
  }
  if (bytes.length % 2) { speak.carry = bytes.slice(-1); bytes = bytes.slice(0, -1); }
  const samples = new Int16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
  if (samples.length && speak.rate) {
    const audio = speak.context.createBuffer(1, samples.length, speak.rate);
    const channel = audio.getChannelData(0);
    for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
    const source = speak.context.createBufferSource();
    source.buffer = audio;
    source.connect(speak.context.destination);
    const at = Math.max(speak.context.currentTime + 0.05, speak.at);
    source.start(at);
    speak.at = at + audio.duration;
    $("tts-state").dataset.playback = "started";
    $("tts-state").dataset.contextState = speak.context.state;
  }
  ttsState($("tts-state").dataset.state);
}

// -- start --------------------------------------------------------------------------------
function init() {
  $("api-key").value = consoleState.key;
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    consoleState.key = $("api-key").value.trim();
    localStorage.setItem(KEY_STORAGE, consoleState.key);
    consoleState.voicesLoaded = false;
    consoleState.modes = [];
    poll();
  });
  $("stt-record").addEventListener("click", startListening);
  $("stt-stop").addEventListener("click", stopListening);
  $("tts-speak").addEventListener("click", startSpeaking);
  poll();
  setInterval(poll, POLL_MS);
}

init();
