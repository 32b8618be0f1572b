// What every page shares: the JSON reads, the bar (language, clock, live state), the live
// feed over Server-Sent Events that reconnects by itself, and small DOM helpers.
import { apply, fmtClock, lang, loadLabels, setLang, t } from "./i18n.js";

// When the page last had fresh data (a read that answered, or a feed message): the banner
// says how old it is when the live feed is not live.
let lastFresh = Date.now();
export function fresh() {
  lastFresh = Date.now();
}

export const esc = (value) =>
  String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// GET (or another method) a JSON endpoint; a 4xx/5xx throws with the server's own message.
export async function api(url, { method = "GET", body, headers = {}, timeoutMs = 15000 } = {}) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const answer = await fetch(url, {
      method,
      headers: { Accept: "application/json", ...(body ? { "Content-Type": "application/json" } : {}), ...headers },
      body: body ? JSON.stringify(body) : undefined,
      signal: abort.signal,
      cache: "no-store",
    });
    const text = await answer.text();
    const data = text ? JSON.parse(text) : null;
    if (!answer.ok) {
      let message = `HTTP ${answer.status}`;
      if (data && typeof data.detail === "string") message = data.detail;
      else if (data && Array.isArray(data.detail)) message = data.detail.map((d) => d.msg).join("; ");
      throw new ApiError(answer.status, message);
    }
    return data;
  } catch (err) {
    if (err.name === "AbortError") throw new ApiError(0, `timeout after ${timeoutMs / 1000} s: ${url}`);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

// The bar: language switch, China clock, live indicator.
let liveState = "connecting";
export function setLive(state) {
  liveState = state;
  const el = document.getElementById("live");
  if (!el) return;
  el.dataset.state = state;
  el.textContent = t("live." + state);
}

function tickClock() {
  const el = document.getElementById("clock");
  if (el) el.textContent = `${fmtClock(Date.now())} ${t("zone")}`;
}

export function initShell() {
  const button = document.getElementById("lang");
  const label = () => { button.textContent = lang() === "zh" ? "EN" : "中文"; };
  button.addEventListener("click", () => {
    setLang(lang() === "zh" ? "en" : "zh");
    label();
    setLive(liveState);
    tickClock();
  });
  label();
  apply();
  setLive(liveState);
  tickClock();
  setInterval(tickClock, 1000);
}

// Start a page: the shell, the labels (rule names …), then the page; a failed start (the
// server down when the page loaded) is shown and tried again, never left blank.
export async function boot(start) {
  initShell();
  const main = document.getElementById("main");
  for (let attempt = 0; ; attempt++) {
    try {
      await loadLabels();
      await start(main);
      return;
    } catch (err) {
      console.warn("start failed, trying again", err);
      main.innerHTML = `<p class="error">${esc(t("err.load", { m: err.message }))}</p>`;
      setLive("reconnecting");
      await sleep(Math.min(15000, 2000 * 2 ** Math.min(attempt, 3)));
    }
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function onLang(render) {
  document.addEventListener("langchange", () => render());
}

// The live feed: one EventSource on /api/feed. The browser reconnects a dropped stream by
// itself (Last-Event-ID is the cursor); a stream that says nothing for `staleMs` (no feed, no
// ping), or one the browser gave up on, is closed and opened again here with a backoff.
export class LiveFeed {
  constructor({ onEvents, onState, staleMs = 20000, limit = 30 }) {
    this.onEvents = onEvents;
    this.onState = onState || (() => {});
    this.staleMs = staleMs;
    this.limit = limit;
    this.source = null;
    this.cursor = null;
    this.lastHeard = Date.now();
    this.failures = 0;
    this.state = "connecting";
    this.watchdog = null;
    this.retryTimer = null;
  }

  start() {
    this.open();
    this.watchdog = setInterval(() => this.check(), 2000);
  }

  stop() {
    clearInterval(this.watchdog);
    clearTimeout(this.retryTimer);
    if (this.source) this.source.close();
    this.source = null;
  }

  set(state) {
    if (state !== this.state) {
      this.state = state;
      this.onState(state);
    }
  }

  open() {
    if (this.source) this.source.close();
    const query = new URLSearchParams({ limit: String(this.limit) });
    if (this.cursor) query.set("after", this.cursor);
    const source = new EventSource(`/api/feed?${query}`);
    this.source = source;
    const heard = (event) => {
      this.lastHeard = Date.now();
      this.failures = 0;
      if (event.lastEventId) this.cursor = event.lastEventId;
    };
    source.addEventListener("open", () => { this.lastHeard = Date.now(); });
    source.addEventListener("feed", (event) => {
      heard(event);
      this.set("live");
      const page = JSON.parse(event.data);
      this.cursor = page.cursor;
      this.onEvents(page.events, page);
    });
    source.addEventListener("ping", (event) => { heard(event); this.set("live"); });
    source.addEventListener("bye", (event) => { heard(event); });
    source.addEventListener("trouble", (event) => {
      this.lastHeard = Date.now();
      this.trouble = JSON.parse(event.data).message;
      this.set("trouble");
    });
    source.addEventListener("error", () => {
      if (source !== this.source) return;
      this.set("reconnecting");
      if (source.readyState === EventSource.CLOSED) this.retry();
    });
  }

  retry() {
    clearTimeout(this.retryTimer);
    this.failures += 1;
    const wait = Math.min(15000, 1000 * 2 ** Math.min(this.failures, 4));
    this.retryTimer = setTimeout(() => this.open(), wait);
  }

  check() {
    const quiet = Date.now() - this.lastHeard;
    if (quiet > this.staleMs) {
      this.set(this.state === "live" || this.state === "stale" ? "stale" : "reconnecting");
      this.lastHeard = Date.now(); // one reopen per stale period
      this.retry();
    }
  }
}

// The page's live feed: the bar's indicator and the banner follow its state; `onEvents` gets
// each page of new events; `onLive` runs when it is live again (to read what was missed).
export function startLive({ onEvents = () => {}, onLive = () => {}, limit = 30 } = {}) {
  const banner = document.getElementById("banner");
  let state = "connecting";
  const show = () => {
    setLive(state);
    if (!banner) return;
    const bad = state === "trouble";
    banner.className = "banner" + (state === "live" || state === "connecting" ? "" : ` show ${bad ? "bad" : "warn"}`);
    banner.textContent = state === "live" || state === "connecting" ? ""
      : bad ? t("banner.trouble", { m: live.trouble || "" })
      : state === "stale" ? t("banner.stale", { s: Math.round((Date.now() - lastFresh) / 1000), t: fmtClock(lastFresh) })
      : t("banner.reconnecting");
  };
  const live = new LiveFeed({
    limit,
    onEvents: (events, page) => { fresh(); onEvents(events, page); },
    onState: (next) => {
      const wasLive = state === "live";
      state = next;
      show();
      if (next === "live" && !wasLive) onLive();
    },
  });
  document.addEventListener("langchange", show);
  setInterval(() => { if (state !== "live") show(); }, 1000);
  live.start();
  return live;
}

// A number tile's value: keep the text node, so a screen reader and a test see one change.
export function setText(el, text) {
  if (el && el.textContent !== text) el.textContent = text;
}

// Charts: one ECharts instance per element, resized with the window, disposed never (pages
// reuse them: a wall running for days must not make a chart per refresh).
const charts = new Map();
let themed = false;
export function chart(el) {
  let instance = charts.get(el);
  if (!instance) {
    if (!themed) {  // the page's font stack in every chart, as in the page around it
      echarts.registerTheme("hazwatch", { textStyle: { fontFamily: css("--font") } });
      themed = true;
    }
    instance = echarts.init(el, "hazwatch", { renderer: "canvas" });
    charts.set(el, instance);
  }
  return instance;
}
let resizeQueued = false;
window.addEventListener("resize", () => {
  if (resizeQueued) return;
  resizeQueued = true;
  requestAnimationFrame(() => {
    resizeQueued = false;
    for (const instance of charts.values()) instance.resize();
  });
});
export function resizeCharts(root = document) {
  for (const [el, instance] of charts) if (root.contains(el)) instance.resize();
}

export function css(name) {
  return getComputedStyle(document.body).getPropertyValue(name).trim();
}

export function params() {
  return new URLSearchParams(location.search);
}
