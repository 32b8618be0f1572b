// 空气质量: per station, 24 h or 7 days — hourly AQI coloured by its level (indicative for a
// micro-station), a pollutant's hourly means (and moving means) against the GB 3095 limits in
// force at each hour's time with every exceedance marked, the raw readings' trend from the point
// store, and the daily report (日报) with heavy-pollution days; the editions shown are named.
// Beside them the data audit: the station's marks in force (what, which hours, why, who,
// automatic or by hand) and its maintenance records, marked hours greyed on every chart.
import {
  dailyTableHtml, H, heavySummary, indicativeHtml, limitName, maintenanceTableHtml, markArea,
  markSpans, marksTableHtml, markTouches, POLLUTANTS, reasonName, renderAqiChart,
  renderPollutantChart, standardsReady, standardsShown, timeAxis,
} from "./airviews.js";
import { api, boot, chart, css, esc, fresh, onLang, params, startLive } from "./common.js";
import { apply, fmtHour, fmtNumber, fmtTs, lang, levelOf, parseTs, pollutantName, pollutantUnit, severityName, t } from "./i18n.js";
import { aqiBadge, levelLegendHtml } from "./views.js";

const DAY = 24 * H;
const DAILY_DAYS = 31; // the daily report shows the last month, and so do maintenance records

// The raw readings' trend; a reading the audit left out is drawn apart, grey and dotted
// ("marked invalid"), never as part of the valid line.
function renderTrendChart(el, trend, pollutant, range, marks) {
  const muted = css("--muted");
  const spans = markSpans(marks, range, pollutant);
  const half = trend.every_s * 500;
  const isMarked = (ms) => spans.some((s) => ms >= s.fromMs && ms < s.toMs);
  const points = trend.points.filter((p) => typeof p[pollutant] === "number").map((p) => [p.time_ms + half, p[pollutant]]);
  const valid = points.map(([ms, v]) => [ms, isMarked(ms) ? null : v]);
  const left = points.map(([ms, v]) => [ms, isMarked(ms) ? v : null]);
  el.dataset.marked = String(left.filter(([, v]) => v !== null).length);
  chart(el).setOption({
    animation: false,
    grid: { left: 52, right: 16, top: 20, bottom: 30 },
    tooltip: { trigger: "axis" },
    xAxis: timeAxis(range),
    yAxis: { type: "value", name: pollutantUnit(pollutant), nameTextStyle: { color: muted }, axisLabel: { color: muted }, splitLine: { lineStyle: { color: css("--line") } } },
    series: [{
      type: "line", name: pollutantName(pollutant), showSymbol: false, areaStyle: { opacity: 0.12 },
      data: valid, markArea: markArea(spans),
    }, {
      type: "line", name: t("air.marked"), showSymbol: false, data: left,
      lineStyle: { color: muted, type: "dotted" }, itemStyle: { color: muted },
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
    <section class="grid cols-2 section">
      <div class="panel"><h2 data-i18n="air.marks"></h2><p class="empty" style="margin:0 0 6px"><small data-i18n="air.markedNote"></small></p><div id="marks" class="table-wrap" style="max-height:300px"></div></div>
      <div class="panel"><h2 data-i18n="air.maintenance"></h2><div id="maintenance" class="table-wrap" style="max-height:300px"></div></div>
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
  let marks = []; // the station's audit marks in force over the range shown
  let records = []; // its maintenance records of the last DAILY_DAYS days
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
    renderAqiChart($("aqi"), rows, range, { marks });
    const over = renderPollutantChart($("means"), rows, pollutant, range, { marks });
    renderTrendChart($("raw"), trend, pollutant, range, marks);
    $("marks").innerHTML = marksTableHtml(marks);
    $("maintenance").innerHTML = maintenanceTableHtml(records);
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
      ? `<table><thead><tr><th>${esc(t("air.hour"))} (${esc(t("zone.short"))})</th><th>AQI</th><th>${esc(t("air.level"))}</th><th>${esc(t("air.primary"))}</th>${POLLUTANTS.map((q) => `<th class="num">${esc(pollutantName(q))}</th>`).join("")}<th>${esc(t("air.audit"))}</th></tr></thead><tbody>` +
        recent.map((r) => {
          const level = levelOf(r.aqi);
          const ms = parseTs(r.hour);
          // the marks that leave data of this hour out: said in the row, which is not valid data
          const hits = marks.filter((m) => markTouches(m, ms, ms + H));
          const colon = lang() === "zh" ? "：" : ": ";
          const audit = hits.map((m) => `<span class="chip">${esc(m.pollutant === "*" ? t("air.allPollutants") : pollutantName(m.pollutant))}${colon}${esc(reasonName(m))}</span>`).join(" ");
          return `<tr${hits.length ? ` data-marked="${hits.length}"` : ""}><td>${esc(fmtTs(r.hour).slice(0, 16))}</td><td>${aqiBadge(r.aqi)}</td><td>${level ? esc(level.name[lang()]) : "—"}</td>` +
            `<td>${esc((r.primary || "").split(",").filter(Boolean).map(pollutantName).join("、") || "—")}</td>` +
            POLLUTANTS.map((q) => `<td class="num">${fmtNumber(r[q], q === "co" ? 2 : 0)}</td>`).join("") +
            `<td>${audit || "—"}</td></tr>`;
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
    const which = `station=${encodeURIComponent(station)}`;
    const [hours, raw, days, audit, kept] = await Promise.all([
      api(`${path}/hourly?from=${Math.floor(from)}`),
      api(`${path}/trend?from=${Math.floor(from)}&every_s=${every}`),
      api(`${path}/daily?from=${Math.floor(now - DAILY_DAYS * DAY)}`),
      api(`/api/air/marks?${which}&from=${Math.floor(from)}&to=${Math.ceil(now)}&revoked=false&limit=5000`)
        .catch((err) => { console.warn("air marks", err); return { marks: [] }; }),
      api(`/api/air/maintenance?${which}&from=${Math.floor(now - DAILY_DAYS * DAY)}&to=${Math.ceil(now)}`)
        .catch((err) => { console.warn("air maintenance", err); return { records: [] }; }),
    ]);
    rows = hours;
    trend = raw;
    daily = days;
    records = kept.records;
    const kinds = new Map(records.map((r) => [r.id, r.kind]));
    marks = audit.marks.map((m) => (kinds.has(m.maintenance_id) ? { ...m, record_kind: kinds.get(m.maintenance_id) } : m));
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
