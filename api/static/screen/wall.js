// 大屏模式: the wall display, 1920×1080, dark, large type, rotating between the overview, the
// alerts and the air every `rotate` seconds (?rotate=N, 5–600, default 20; ?view=NAME holds
// one). It runs unattended for days: the live feed reconnects by itself and says so, every
// view says how old its data is and warns when it is stale, and nothing grows without bound
// (the feed keeps 40 items, each chart is one instance reused, timers are fixed).
import { H, renderAqiChart, renderPollutantChart } from "./airviews.js";
import { api, boot, esc, fresh, onLang, params, resizeCharts, startLive } from "./common.js";
import { apply, fmtClock, fmtTs, levelOf, lang, ruleName, severityName, t } from "./i18n.js";
import {
  FeedList, kpiHtml, renderKpis, renderMap, renderStages, sitesTableHtml, stationsHtml,
} from "./views.js";

const VIEWS = ["overview", "alerts", "air"];
const REFRESH_MS = 10000;
const STALE_MS = 3 * REFRESH_MS;

function rotateSeconds() {
  const n = Number(params().get("rotate"));
  return Number.isFinite(n) && n >= 5 && n <= 600 ? n : 20;
}

boot(async (main) => {
  const rotateS = rotateSeconds();
  const held = VIEWS.includes(params().get("view")) ? params().get("view") : null;
  main.innerHTML = `
    <section class="view" data-view="overview" style="grid-template-rows:auto minmax(0,1fr) minmax(0,.9fr);grid-template-columns:1.05fr 1fr .95fr;gap:14px">
      <div style="grid-column:1/4">${kpiHtml()}</div>
      <div class="panel"><h2 data-i18n="ov.map"></h2><div id="wMap" class="chart" style="height:calc(100% - 44px)"></div></div>
      <div class="panel"><h2 data-i18n="ov.stages"></h2><div id="wStages" class="chart" style="height:calc(100% - 44px)"></div></div>
      <div class="panel" style="grid-row:2/4;grid-column:3"><h2 data-i18n="ov.feed"></h2><ul id="wFeed" class="feed" style="max-height:calc(100% - 44px)"></ul></div>
      <div class="panel" style="grid-column:1/3;overflow:hidden"><h2 data-i18n="ov.sites"></h2><div id="wSites"></div></div>
    </section>
    <section class="view" data-view="alerts" style="grid-template-columns:1.5fr 1fr;gap:14px">
      <div class="panel" style="overflow:hidden"><h2><span data-i18n="wall.alerts"></span> <small id="wAlertCount"></small></h2><div id="wAlerts"></div></div>
      <div class="grid" style="grid-template-rows:auto minmax(0,1fr);gap:14px">
        <div class="panel"><h2 data-i18n="kpi.alerts"></h2><div id="wSev" style="display:flex;gap:14px;flex-wrap:wrap"></div></div>
        <div class="panel" style="overflow:hidden"><h2 data-i18n="ov.recentAlerts"></h2><ul id="wAlertFeed" class="feed" style="max-height:calc(100% - 44px)"></ul></div>
      </div>
    </section>
    <section class="view" data-view="air" style="grid-template-rows:auto minmax(0,1fr);grid-template-columns:1fr 1fr;gap:14px">
      <div class="panel" style="grid-column:1/3"><h2><span data-i18n="wall.air"></span> <small class="chip sev-warning" data-indicative data-i18n="air.indicative"></small></h2><div id="wStations" class="stations" style="grid-template-columns:repeat(auto-fill,minmax(300px,1fr))"></div></div>
      <div class="panel"><h2><span data-i18n="air.hourlyAqi"></span> <small id="wAirStation"></small></h2><div id="wAqi" class="chart" style="height:calc(100% - 44px)"></div></div>
      <div class="panel"><h2 id="wPmTitle"></h2><div id="wPm" class="chart" style="height:calc(100% - 44px)"></div></div>
    </section>
    <div class="wall-foot"><span class="dots" id="dots">${VIEWS.map((v) => `<i data-dot="${v}"></i>`).join("")}</span>
      <span id="viewName"></span> · <span id="updated"></span> · <span id="next"></span></div>`;
  apply(main);
  const $ = (id) => document.getElementById(id);
  const feed = new FeedList($("wFeed"), 24);
  const alertFeed = new FeedList($("wAlertFeed"), 14);
  const lastOk = { overview: 0, alerts: 0, air: 0 };
  let overview = null, alerts = null, air = null;
  let current = held || VIEWS[0];
  let nextAt = Date.now() + rotateS * 1000;

  const show = (view) => {
    current = view;
    for (const el of main.querySelectorAll(".view")) el.classList.toggle("shown", el.dataset.view === view);
    for (const el of main.querySelectorAll("[data-dot]")) el.classList.toggle("on", el.dataset.dot === view);
    document.body.dataset.view = view;
    $("viewName").textContent = t("wall." + view);
    resizeCharts(main.querySelector(`[data-view="${view}"]`));
    draw(view);
  };

  const draw = (view) => {
    if (view === "overview" && overview) {
      renderKpis(main, overview);
      renderMap($("wMap"), overview, { wall: true });
      renderStages($("wStages"), overview, { wall: true });
      $("wSites").innerHTML = sitesTableHtml(overview, { rows: 3 });
    }
    if (view === "alerts" && alerts) {
      $("wAlertCount").textContent = `${alerts.total}`;
      $("wAlerts").innerHTML = alerts.alerts.length
        ? `<table><thead><tr><th>${esc(t("al.opened"))}</th><th>${esc(t("al.severity"))}</th><th>${esc(t("al.rule"))}</th><th>${esc(t("al.subject"))}</th><th>${esc(t("al.state"))}</th></tr></thead><tbody>` +
          alerts.alerts.slice(0, 12).map((a) => `<tr><td>${esc(fmtTs(a.opened).slice(5, 19))}</td><td class="sev-${a.severity}">${esc(severityName(a.severity))}</td>` +
            `<td>${esc(ruleName(a.rule))}</td><td>${esc(a.subject)}</td><td>${esc(t("astate." + a.state))}</td></tr>`).join("") + "</tbody></table>"
        : `<p class="empty">${esc(t("al.none"))}</p>`;
      const sev = overview ? overview.total.alerts.by_severity : {};
      $("wSev").innerHTML = ["critical", "major", "warning", "info"].map((s) =>
        `<div class="kpi" style="flex:1;min-width:140px"><div class="label sev-${s}">${esc(severityName(s))}</div><div class="value sev-${s}">${sev[s] ?? 0}</div></div>`).join("");
    }
    if (view === "air" && air) {
      $("wStations").innerHTML = stationsHtml({ air: air.stations });
      $("wAirStation").textContent = air.station ? air.station : "";
      const range = { fromMs: air.at - 24 * H, toMs: air.at };
      renderAqiChart($("wAqi"), air.hours, range, { wall: true });
      $("wPmTitle").textContent = `PM2.5 ${t("air.hourlyMeans")}`;
      renderPollutantChart($("wPm"), air.hours, "pm25", range, { wall: true });
    }
  };

  const load = {
    overview: async () => { overview = await api("/api/overview"); },
    alerts: async () => { alerts = await api("/api/alerts?state=open&limit=50"); },
    air: async () => {
      const now = Date.now();
      const data = await api("/api/overview");
      overview = data;
      const first = data.air.find((s) => s.aqi !== null) || data.air[0];
      const hours = first ? await api(`/api/air/${encodeURIComponent(first.station)}/hourly?from=${now - 24 * H}`) : [];
      air = { stations: data.air, station: first ? first.station : null, hours, at: now };
    },
  };

  const refresh = async (view) => {
    try {
      await load[view]();
      lastOk[view] = Date.now();
      if (view === "overview" || view === "air") lastOk.overview = lastOk[view];
      fresh();
      if (view === current) draw(view);
    } catch (err) {
      console.warn("wall", view, err.message);
    }
  };

  // what the foot says: when this view's data was read, when the next view comes; a view
  // whose data is older than STALE_MS says so in the banner, whatever the feed's state
  const foot = () => {
    const age = Date.now() - lastOk[current];
    $("updated").textContent = lastOk[current] ? t("wall.updated", { t: `${fmtClock(lastOk[current])} ${t("zone.short")}` }) : t("loading");
    $("next").textContent = held ? "" : t("wall.next", { s: Math.max(0, Math.round((nextAt - Date.now()) / 1000)) });
    const banner = $("banner");
    if (lastOk[current] && age > STALE_MS && !banner.classList.contains("show")) {
      banner.className = "banner show bad";
      banner.textContent = t("banner.stale", { s: Math.round(age / 1000), t: fmtClock(lastOk[current]) });
      banner.dataset.stale = "1";
    } else if (banner.dataset.stale && age <= STALE_MS) {
      banner.className = "banner";
      banner.textContent = "";
      delete banner.dataset.stale;
    }
  };

  await Promise.all(VIEWS.map(refresh));
  if (!lastOk.overview) throw new Error("overview unavailable");
  show(current);
  feed.render();
  alertFeed.render();
  setInterval(() => {
    if (!held && Date.now() >= nextAt) {
      nextAt = Date.now() + rotateS * 1000;
      show(VIEWS[(VIEWS.indexOf(current) + 1) % VIEWS.length]);
    }
    foot();
  }, 1000);
  setInterval(() => { refresh("overview"); if (current !== "overview") refresh(current); }, REFRESH_MS);
  startLive({
    onEvents: (events) => {
      feed.add(events);
      alertFeed.add(events.filter((e) => e.kind === "alert"));
    },
    onLive: () => { refresh("overview"); refresh(current); },
  });
  onLang(() => { apply(main); feed.render(); alertFeed.render(); show(current); });
  window.hazwatchWall = { get view() { return current; }, lastOk, rotateS, lang, levelOf };
});
