// 空气质量: per station, 24 h or 7 days — hourly AQI coloured by its level (indicative for a
// micro-station), a pollutant's hourly means (and moving means) against the GB 3095 limits in
// force at each hour's time with every exceedance marked, the raw readings' trend from the point
// store, and the daily report (日报) with heavy-pollution days; the editions shown are named.
import {
  dailyTableHtml, H, heavySummary, indicativeHtml, limitName, POLLUTANTS, renderAqiChart,
  renderPollutantChart, standardsReady, standardsShown, timeAxis,
} from "./airviews.js";
import { api, boot, chart, css, esc, fresh, onLang, params, startLive } from "./common.js";
import { apply, fmtHour, fmtNumber, fmtTs, lang, levelOf, pollutantName, pollutantUnit, severityName, t } from "./i18n.js";
import { aqiBadge, levelLegendHtml } from "./views.js";

const DAY = 24 * H;
const DAILY_DAYS = 31; // the daily report shows the last month

function renderTrendChart(el, trend, pollutant, range) {
  const muted = css("--muted");
  chart(el).setOption({
    animation: false,
    grid: { left: 52, right: 16, top: 20, bottom: 30 },
    tooltip: { trigger: "axis" },
    xAxis: timeAxis(range),
    yAxis: { type: "value", name: pollutantUnit(pollutant), nameTextStyle: { color: muted }, axisLabel: { color: muted }, splitLine: { lineStyle: { color: css("--line") } } },
    series: [{
      type: "line", name: pollutantName(pollutant), showSymbol: false, sampling: "lttb",
      areaStyle: { opacity: 0.12 },
      data: trend.points.filter((p) => typeof p[pollutant] === "number").map((p) => [p.time_ms + (trend.every_s * 500), p[pollutant]]),
    }],
  }, true);
}

boot(async (main) => {
  main.innerHTML = `
    <div class="toolbar">
      <label><span data-i18n="air.station"></span> <select id="station"></select></label>
      <span class="seg" id="range"><button type="button" data-h="24" data-i18n="air.range24"></button><button type="button" data-h="168" data-i18n="air.range7d"></button></span>
      <span class="seg" id="pollutant">${POLLUTANTS.map((p) => `<button type="button" data-p="${p}"></button>`).join("")}</span>
      <span class="empty" id="note"></span>
    </div>
    <p class="empty" style="margin:0 0 10px"><span data-i18n="air.standards"></span><b id="standard"></b></p>
    <section class="grid cols-2">
      <div class="panel"><h2><span data-i18n="air.hourlyAqi"></span> <span id="aqiNote"></span></h2><div id="aqi" class="chart"></div><div id="legend"></div></div>
      <div class="panel"><h2 id="meansTitle"></h2><div id="means" class="chart"></div><p class="empty"><small id="limitNote"></small></p></div>
    </section>
    <section class="grid cols-2 section">
      <div class="panel"><h2 id="rawTitle"></h2><div id="raw" class="chart"></div></div>
      <div class="panel"><h2 data-i18n="air.exceedances"></h2><div id="over" class="table-wrap" style="max-height:300px"></div></div>
    </section>
    <section class="panel section"><h2><span data-i18n="air.daily"></span> <span id="dailyNote"></span></h2>
      <p id="heavy" style="margin:4px 0 8px"></p><div id="days" class="table-wrap"></div></section>
    <section class="panel section"><h2><span data-i18n="air.hourlyMeans"></span> <span id="hoursNote"></span></h2><div id="hours" class="table-wrap"></div></section>`;
  apply(main);
  const $ = (id) => document.getElementById(id);
  const p = params();
  let stations = await api("/api/air/stations");
  await standardsReady; // the editions by date, before the first chart judges an hour by them
  // the station asked for, else the first with a closed hour (an AQI), else the first
  const first = () => (stations.find((s) => s.aqi !== null) || stations[0] || {}).station || null;
  let station = p.get("station") || first();
  let rangeH = p.get("range") === "7d" ? 168 : 24;
  let pollutant = POLLUTANTS.includes(p.get("pollutant")) ? p.get("pollutant") : "pm25";
  let rows = [];
  let daily = { days: [], heavy_days_now: 0 };
  let trend = { points: [], every_s: 300 };
  let range = { fromMs: Date.now() - rangeH * H, toMs: Date.now() };

  const fillStations = () => {
    $("station").innerHTML = stations.map((s) =>
      `<option value="${esc(s.station)}" ${s.station === station ? "selected" : ""}>${esc(s.station)} (${esc(s.site)})</option>`).join("");
  };

  const render = () => {
    for (const b of $("range").children) b.setAttribute("aria-pressed", String(Number(b.dataset.h) === rangeH));
    for (const b of $("pollutant").children) {
      b.textContent = pollutantName(b.dataset.p);
      b.setAttribute("aria-pressed", String(b.dataset.p === pollutant));
    }
    $("legend").innerHTML = levelLegendHtml();
    $("meansTitle").textContent = `${pollutantName(pollutant)} ${t("air.hourlyMeans")} (${pollutantUnit(pollutant)})`;
    $("rawTitle").textContent = t("air.raw", { m: Math.round(trend.every_s / 60) });
    // the editions that rated what is shown (two across a switch), and the AQI's standing
    const shown = standardsShown([...rows, ...daily.days], range.toMs);
    $("standard").textContent = shown.join("；");
    $("standard").dataset.count = String(shown.length);
    $("limitNote").textContent = t(shown.length > 1 ? "air.limitNoteMany" : "air.limitNote", { s: shown.join("；") });
    const indicative = [...rows, ...daily.days].some((r) => r.indicative) ? indicativeHtml() : "";
    for (const id of ["aqiNote", "dailyNote", "hoursNote"]) $(id).innerHTML = indicative;
    if (!station) {
      $("note").textContent = t("air.noStation");
      return;
    }
    $("note").textContent = rows.length ? "" : t("air.noData");
    renderAqiChart($("aqi"), rows, range);
    const over = renderPollutantChart($("means"), rows, pollutant, range);
    renderTrendChart($("raw"), trend, pollutant, range);
    $("over").innerHTML = over.length
      ? `<table><thead><tr><th>${esc(t("air.hour"))} (${esc(t("zone.short"))})</th><th>${esc(t("air.pollutant"))}</th><th class="num">${esc(pollutantUnit(pollutant))}</th><th class="num">${esc(t("air.limit"))}</th><th class="num">${esc(t("air.runH"))}</th><th>${esc(t("al.severity"))}</th><th>${esc(t("air.standard"))}</th></tr></thead><tbody>` +
        over.sort((a, b) => b.ms - a.ms).map((e) => `<tr data-exceed="${esc(e.limitKey)}" data-limit="${e.limit ?? ""}"><td>${esc(fmtHour(e.ms))}</td><td>${esc(limitName(e.limitKey))}</td>` +
          `<td class="num verdict-broken">${fmtNumber(e.value, pollutant === "co" ? 2 : 0)}</td><td class="num">${e.limit ?? "—"}</td>` +
          `<td class="num">${e.run ?? "—"}</td><td class="sev-${esc(e.severity || "warning")}">${e.severity ? esc(severityName(e.severity)) : "—"}</td><td><small>${esc(e.standard)}</small></td></tr>`).join("") + "</tbody></table>"
      : `<p class="empty">${esc(t("none"))}</p>`;
    $("heavy").innerHTML = heavySummary(daily);
    $("days").innerHTML = dailyTableHtml(daily.days);
    const recent = [...rows].reverse().slice(0, rangeH === 24 ? 24 : 48);
    $("hours").innerHTML = recent.length
      ? `<table><thead><tr><th>${esc(t("air.hour"))} (${esc(t("zone.short"))})</th><th>AQI</th><th>${esc(t("air.level"))}</th><th>${esc(t("air.primary"))}</th>${POLLUTANTS.map((q) => `<th class="num">${esc(pollutantName(q))}</th>`).join("")}</tr></thead><tbody>` +
        recent.map((r) => {
          const level = levelOf(r.aqi);
          return `<tr><td>${esc(fmtTs(r.hour).slice(0, 16))}</td><td>${aqiBadge(r.aqi)}</td><td>${level ? esc(level.name[lang()]) : "—"}</td>` +
            `<td>${esc((r.primary || "").split(",").filter(Boolean).map(pollutantName).join("、") || "—")}</td>` +
            POLLUTANTS.map((q) => `<td class="num">${fmtNumber(r[q], q === "co" ? 2 : 0)}</td>`).join("") + "</tr>";
        }).join("") + "</tbody></table>"
      : `<p class="empty">${esc(t("air.noData"))}</p>`;
  };

  const load = async () => {
    if (!station) { render(); return; }
    const now = Date.now();
    const from = now - rangeH * H;
    range = { fromMs: from, toMs: now };
    const every = rangeH === 24 ? 300 : 3600;
    const path = `/api/air/${encodeURIComponent(station)}`;
    const [hours, raw, days] = await Promise.all([
      api(`${path}/hourly?from=${Math.floor(from)}`),
      api(`${path}/trend?from=${Math.floor(from)}&every_s=${every}`),
      api(`${path}/daily?from=${Math.floor(now - DAILY_DAYS * DAY)}`),
    ]);
    rows = hours;
    trend = raw;
    daily = days;
    fresh();
    render();
  };

  fillStations();
  $("station").addEventListener("change", () => { station = $("station").value; load(); });
  $("range").addEventListener("click", (e) => { if (e.target.dataset.h) { rangeH = Number(e.target.dataset.h); load(); } });
  $("pollutant").addEventListener("click", (e) => { if (e.target.dataset.p) { pollutant = e.target.dataset.p; render(); } });
  await load();
  setInterval(async () => {
    try {
      stations = await api("/api/air/stations");
      if (!station && stations.length) { station = first(); fillStations(); }
      await load();
    } catch (err) { console.warn("air", err); }
  }, 60000);
  onLang(() => { apply(main); fillStations(); render(); });
  startLive({ onLive: () => load().catch(() => {}) });
});
