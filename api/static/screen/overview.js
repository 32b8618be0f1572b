// 总览: the overview page. Reads /api/overview, and /api/feed live (SSE): the numbers follow
// the events without a reload, and a refresh every 10 s catches what no event announced.
import { api, boot, esc, fresh, onLang, startLive } from "./common.js";
import { apply, fmtClock, t } from "./i18n.js";
import {
  FeedList, ingestHtml, kpiHtml, levelLegendHtml, recentAlertsHtml, renderKpis, renderMap,
  renderStages, sitesTableHtml, stationsHtml,
} from "./views.js";

const REFRESH_MS = 10000;

boot(async (main) => {
  main.innerHTML = `
    ${kpiHtml()}
    <section class="grid cols-main section">
      <div class="panel"><h2 data-i18n="ov.map"></h2><div id="map" class="chart map"></div></div>
      <div class="panel"><h2 data-i18n="ov.stages"></h2><div id="stages" class="chart map"></div></div>
      <div class="panel"><h2 data-i18n="ov.feed"></h2><ul id="feed" class="feed"></ul></div>
    </section>
    <section class="grid cols-2 section">
      <div class="panel"><h2 data-i18n="ov.sites"></h2><div id="sites" class="table-wrap"></div></div>
      <div class="panel"><h2><span data-i18n="ov.air"></span> <small class="chip sev-warning" data-indicative data-i18n="air.indicative"></small></h2><div id="stations" class="stations"></div>
        <div id="levels" style="margin-top:8px"></div></div>
    </section>
    <section class="grid cols-2 section">
      <div class="panel"><h2 data-i18n="ov.recentAlerts"></h2><div id="recent" class="table-wrap"></div></div>
      <div class="panel"><h2 data-i18n="ov.ingest"></h2><div id="ingest"></div>
        <p class="empty"><small id="updated"></small></p></div>
    </section>`;
  apply(main);
  const $ = (id) => document.getElementById(id);
  const feedList = new FeedList($("feed"), 40);
  let data = null;
  let lastOk = 0;

  const render = () => {
    if (!data) return;
    renderKpis(main, data);
    renderMap($("map"), data);
    renderStages($("stages"), data);
    $("sites").innerHTML = sitesTableHtml(data);
    $("stations").innerHTML = stationsHtml(data);
    $("levels").innerHTML = levelLegendHtml();
    $("recent").innerHTML = recentAlertsHtml(data);
    $("ingest").innerHTML = ingestHtml(data);
    $("updated").textContent = `${t("wall.updated", { t: fmtClock(lastOk) })} (${t("zone.short")})`;
  };

  let inFlight = false;
  const refresh = async () => {
    if (inFlight) return;
    inFlight = true;
    try {
      data = await api("/api/overview");
      lastOk = Date.now();
      fresh();
      render();
    } catch (err) {
      console.warn("overview", err);
    } finally {
      inFlight = false;
    }
  };

  let queued = null;
  const soon = () => {
    if (queued) return;
    queued = setTimeout(() => { queued = null; refresh(); }, 1000);
  };

  const live = () => startLive({
    onEvents: (events) => { if (feedList.add(events)) soon(); },
    onLive: () => refresh(),
  });
  await refresh();
  if (!data) throw new Error("overview unavailable");
  feedList.render();
  live();
  setInterval(refresh, REFRESH_MS);
  onLang(() => { apply(main); feedList.render(); render(); });
  window.hazwatchOverview = { refresh, get data() { return data; }, esc };
});
