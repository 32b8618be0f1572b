// The air charts and tables the air page and the wall display both draw: hourly AQI coloured by
// its level, a pollutant against the GB 3095 limits in force at each hour's time (HJ 633 and
// GB 3095 by edition, from /api/air/standards), exceedances marked, and the daily report.
import { api, chart, css, esc } from "./common.js";
import { chinaParts, fmtNumber, lang, levelOf, parseTs, pollutantName, pollutantUnit, t } from "./i18n.js";
import { aqiBadge } from "./views.js";

const pad = (n) => String(n).padStart(2, "0");
// a time axis over [from, to): hours for a day, days for a week, China time
export function timeAxis(range, big = 1) {
  const week = range.toMs - range.fromMs > 2 * 86400 * 1000;
  return {
    type: "time", min: range.fromMs, max: range.toMs,
    minInterval: week ? 86400 * 1000 : 3600 * 1000,
    axisLabel: {
      color: css("--muted"), fontSize: 11 * big, hideOverlap: true,
      formatter: (v) => {
        const p = chinaParts(v);
        return week ? `${pad(p.mo)}-${pad(p.d)}` : `${pad(p.h)}:${pad(p.mi)}`;
      },
    },
    splitLine: { show: false },
  };
}

export const POLLUTANTS = ["pm25", "pm10", "o3", "no2", "so2", "co"];
// which series of a pollutant the limits apply to: [series key, limit key]
export const LIMITED = {
  pm25: [["pm25_24h", "pm25_24h"]],
  pm10: [["pm10_24h", "pm10_24h"]],
  o3: [["o3", "o3_1h"], ["o3_8h", "o3_8h"]],
  no2: [["no2", "no2_1h"], ["no2_24h", "no2_24h"]],
  so2: [["so2", "so2_1h"], ["so2_24h", "so2_24h"]],
  co: [["co", "co_1h"], ["co_24h", "co_24h"]],
};
// a daily report's values, in the order the table shows them (o3_8h: the daily maximum 8-h mean)
export const DAILY = ["pm25", "pm10", "o3_8h", "no2", "so2", "co"];
export const H = 3600 * 1000;

// The editions of the standards and the instant each rates data from (/api/air/standards),
// read once when this module loads; until then limits come from the rows' own judgement.
let editions = null;
export const standardsReady = api("/api/air/standards")
  .then((found) => { editions = found; return found; })
  .catch((err) => { console.warn("air standards", err); return null; });

const inForce = (list, ms) => {
  let found = null;
  for (const e of list || []) if (found === null || ms >= e.from_ms) found = e;
  return found;
};
export const aqiEditionAt = (ms) => (editions ? inForce(editions.aqi, ms) : null);
export const limitSetAt = (ms) => (editions ? inForce(editions.limits, ms) : null);
// the limit of `key` (so2_1h, pm25_24h …) in force at `ms` for a station of that grade
export function limitAt(key, ms, grade = 2) {
  const set = limitSetAt(ms);
  const table = set && set.grades[String(grade)];
  return table ? table[key] : undefined;
}
// the instants inside (from, to) where an edition of either standard takes over
export function switchesIn(range) {
  if (!editions) return [];
  const at = new Set([...editions.aqi, ...editions.limits].map((e) => e.from_ms)
    .filter((ms) => ms > range.fromMs && ms < range.toMs));
  return [...at].sort((a, b) => a - b);
}

// The standards that rated a row (an hour or a day): the row's own fields, else the editions in
// force at its time; `transition` for GB 3095-2026's transition limits (2026-03-01 … 2030-12-31).
export function standardOf(row) {
  const ms = parseTs(row.hour || row.day);
  const set = limitSetAt(ms);
  const label = row.limits_standard || (set ? set.label : "");
  return {
    aqi: row.aqi_standard || (aqiEditionAt(ms) || {}).name || "",
    limits: label.split(" ").slice(0, 2).join(" "),
    transition: label.includes("过渡") || label.includes("transition"),
    grade: row.grade === 1 ? 1 : 2,
  };
}
// "HJ 633-2026 / GB 3095-2026 过渡期限值（二级）"
export function standardText(s) {
  const phase = t(s.transition ? "air.phaseTransition" : "air.phaseLimits");
  return `${s.aqi} / ${s.limits} ${phase}${t("air.gradeOf", { g: t("air.grade" + s.grade) })}`;
}
// every edition the rows were rated by, oldest first; none: the one in force at `atMs`
export function standardsShown(rows, atMs = Date.now()) {
  const texts = [];
  for (const row of rows) {
    const text = standardText(standardOf(row));
    if (!texts.includes(text)) texts.push(text);
  }
  if (!texts.length && editions) {
    const set = limitSetAt(atMs);
    texts.push(standardText({
      aqi: (aqiEditionAt(atMs) || {}).name || "", limits: set.name,
      transition: set.label.includes("过渡"), grade: 2,
    }));
  }
  return texts;
}

// Micro-station AQI is indicative, not official (#20 item 4): said wherever an AQI is shown.
export const indicativeHtml = () =>
  `<small class="chip sev-warning" data-indicative>${esc(t("air.indicative"))}</small>`;

// the limit keys a row's `over` says it exceeds: key → {hours in a row, severity}
export function overOf(row) {
  const found = new Map();
  if (typeof row.over !== "string") return found;
  for (const item of row.over.split(",").filter(Boolean)) {
    const [key, run, severity] = item.split(":");
    found.set(key, { run: run ? Number(run) : null, severity: severity || null });
  }
  return found;
}

// Each exceedance of the pollutant's limits in the rows, judged by the limits in force at that
// hour for the station's grade: the service's judgement (`over`, on the rounded value when the
// edition rounds) where the row has one, else the value against the limit.
export function exceedances(rows, pollutant) {
  const found = [];
  for (const [series, limitKey] of LIMITED[pollutant]) {
    for (const row of rows) {
      const value = row[series];
      if (typeof value !== "number") continue;
      const ms = parseTs(row.hour);
      const limit = limitAt(limitKey, ms, row.grade);
      const over = overOf(row);
      const judged = typeof row.over === "string" ? over.has(limitKey) : limit !== undefined && value > limit;
      if (!judged) continue;
      const seen = over.get(limitKey) || {};
      found.push({
        ms, series, limitKey, value, limit, run: seen.run ?? null, severity: seen.severity ?? null,
        standard: standardText(standardOf(row)),
      });
    }
  }
  return found;
}

// a vertical line where an edition takes over, named by the editions in force from then
function switchMarks(range, big) {
  const muted = css("--muted");
  return switchesIn(range).map((ms) => ({
    xAxis: ms,
    label: {
      formatter: `${(aqiEditionAt(ms) || {}).name} / ${(limitSetAt(ms) || {}).name}`,
      color: muted, fontSize: 10 * big, position: "insideEndTop",
    },
  }));
}

export function renderAqiChart(el, rows, range, { wall = false, marks = [] } = {}) {
  const big = wall ? 1.6 : 1;
  const muted = css("--muted");
  const spans = markSpans(marks, range); // hours with data left out of the AQI by the audit
  el.dataset.marked = String(spans.length);
  chart(el).setOption({
    animation: false,
    grid: { left: 46, right: 16, top: 24, bottom: 30 * big },
    tooltip: { trigger: "axis" },
    xAxis: timeAxis(range, big),
    yAxis: { type: "value", name: "AQI", nameTextStyle: { color: muted }, axisLabel: { color: muted, fontSize: 11 * big }, splitLine: { lineStyle: { color: css("--line") } } },
    series: [{
      type: "bar", name: "AQI", barMaxWidth: 18 * big,
      data: rows.filter((r) => typeof r.aqi === "number").map((r) => ({
        value: [parseTs(r.hour) + H / 2, r.aqi],
        itemStyle: { color: (levelOf(r.aqi) || {}).rgb },
      })),
      markLine: {
        silent: true, symbol: "none", lineStyle: { color: css("--warning"), type: "dashed" },
        label: { color: muted, formatter: "100", position: "insideEndTop" },
        data: [{ yAxis: 100 }, ...switchMarks(range, big)],
      },
      markArea: markArea(spans, big),
    }],
  }, true);
}

// The limit of `key` as a step line over the range: the value in force from each edition's
// instant on, for the grade of the station's newest row.
function limitSteps(key, rows, range) {
  const grade = rows.length ? rows[rows.length - 1].grade : 2;
  const points = [range.fromMs, ...switchesIn(range), range.toMs]
    .map((ms) => [ms, limitAt(key, ms, grade)]);
  return points.every(([, v]) => v !== undefined) ? points : [];
}

const movingName = (key, pollutant) => key.replace(pollutant + "_", pollutantName(pollutant) + " ")
  .replace("24h", lang() === "zh" ? "24小时滑动" : "24-h moving").replace("8h", lang() === "zh" ? "8小时滑动" : "8-h moving");

export function renderPollutantChart(el, rows, pollutant, range, { wall = false, marks = [] } = {}) {
  const big = wall ? 1.6 : 1;
  const muted = css("--muted");
  const alarm = css("--alarm");
  const series = [];
  const seriesKeys = [pollutant, ...LIMITED[pollutant].map(([k]) => k).filter((k) => k !== pollutant)];
  const names = { [pollutant]: `${pollutantName(pollutant)} ${t("air.hourlyMeans")}` };
  const spans = markSpans(marks, range, pollutant);
  el.dataset.marked = String(spans.length);
  // an hour the audit marked breaks the line (no value is drawn across it)
  const marked = (ms) => spans.some((s) => ms < s.toMs && ms + H > s.fromMs);
  for (const key of seriesKeys) {
    const data = rows.filter((r) => typeof r[key] === "number" || marked(parseTs(r.hour)))
      .map((r) => [parseTs(r.hour) + H / 2, typeof r[key] === "number" ? r[key] : null]);
    if (!data.some(([, v]) => v !== null)) continue;
    series.push({
      type: "line", name: names[key] || movingName(key, pollutant),
      data, showSymbol: data.length < 60, symbolSize: 4 * big, lineStyle: { width: 2 * big },
    });
  }
  const legend = series.map((s) => s.name);
  if (series.length) series[0].markLine = { silent: true, symbol: "none", lineStyle: { color: muted, type: "dotted" }, data: switchMarks(range, big) };
  const limitValues = [];
  for (const [, limitKey] of LIMITED[pollutant]) {
    const steps = limitSteps(limitKey, rows, range);
    if (!steps.length) continue;
    const now = steps[steps.length - 1][1];
    limitValues.push(...steps.map(([, v]) => v));
    series.push({
      type: "line", name: `${t("air.limit")} ${limitName(limitKey)}`, step: "end", silent: true,
      symbol: "none", data: steps, z: 1, lineStyle: { color: alarm, type: "dashed", width: 1.2 * big },
      endLabel: { show: true, color: alarm, fontSize: 11 * big, formatter: `${t("air.limit")} ${now}`, offset: [-60 * big, -10 * big] },
      tooltip: { show: false },
    });
  }
  const over = exceedances(rows, pollutant);
  series.push({
    type: "scatter", name: t("air.exceed"), symbolSize: 11 * big, itemStyle: { color: alarm },
    data: over.map((e) => [e.ms + H / 2, e.value]), z: 5, markArea: markArea(spans, big),
  });
  legend.push(t("air.exceed"));
  el.dataset.exceedances = String(over.length);
  const top = Math.max(...limitValues, ...rows.flatMap((r) => seriesKeys.map((k) => (typeof r[k] === "number" ? r[k] : 0))));
  chart(el).setOption({
    animation: false,
    legend: { top: 0, data: legend, textStyle: { color: muted, fontSize: 12 * big } },
    grid: { left: 52, right: 16, top: 30 * big, bottom: 30 * big },
    tooltip: { trigger: "axis" },
    xAxis: timeAxis(range, big),
    yAxis: {
      type: "value", name: pollutantUnit(pollutant), max: Math.ceil(top * 1.12) || undefined,
      nameTextStyle: { color: muted }, axisLabel: { color: muted, fontSize: 11 * big }, splitLine: { lineStyle: { color: css("--line") } },
    },
    series,
  }, true);
  return over;
}

// a limit's key (pollutant and averaging period, as GB 3095 names it) in words
export function limitName(key) {
  const [p, period] = key.split("_");
  const words = {
    "1h": lang() === "zh" ? "小时均值" : "1-h mean",
    "24h": lang() === "zh" ? "24小时平均" : "24-h mean",
    "8h": lang() === "zh" ? "日最大8小时平均" : "daily max 8-h mean",
  };
  return `${pollutantName(p)} ${words[period] || period}`;
}

const digits = (key) => (key.startsWith("co") ? 1 : 0);

// The daily report (日报) as a table, newest day first: each natural day's means, O3's daily
// maximum 8-h mean, AQI, level, primary pollutant, the limits exceeded (marked), heavy-pollution
// days with their count in a row, and the standards that rated the day.
export function dailyTableHtml(days, { levelName = (l) => (l ? l.name[lang()] : "—") } = {}) {
  if (!days.length) return `<p class="empty">${esc(t("air.noDays"))}</p>`;
  const heads = DAILY.map((k) => `<th class="num">${esc(k === "o3_8h" ? t("air.o3DailyMax") : pollutantName(k))}</th>`).join("");
  const body = [...days].reverse().map((d) => {
    const over = new Set((d.over || "").split(",").filter(Boolean));
    const level = levelOf(d.aqi);
    const cells = DAILY.map((k) => {
      const limitKey = k === "o3_8h" ? "o3_8h" : `${k}_24h`;
      const hit = over.has(limitKey);
      return `<td class="num${hit ? " verdict-broken" : ""}"${hit ? ` data-over="${esc(limitKey)}"` : ""}>${fmtNumber(d[k], digits(k))}</td>`;
    }).join("");
    const heavy = d.heavy
      ? `<span class="sev-critical">${esc(t("air.heavyRun", { n: d.heavy_days }))}</span>`
      : "—";
    const date = esc(fmtDay(d.day)) + (d.complete ? "" : ` <small class="empty">${esc(t("air.dayOpen"))}</small>`);
    return `<tr data-day="${esc(d.day)}"${d.heavy ? ` data-heavy="${d.heavy_days}"` : ""}><td>${date}</td>` +
      `<td>${aqiBadge(d.aqi)}</td><td>${esc(levelName(level))}</td>` +
      `<td>${esc((d.primary || "").split(",").filter(Boolean).map(pollutantName).join("、") || "—")}</td>${cells}` +
      `<td>${over.size ? esc([...over].map(limitName).join("、")) : "—"}</td><td>${heavy}</td>` +
      `<td><small>${esc(standardText(standardOf(d)))}</small></td></tr>`;
  }).join("");
  return `<table><thead><tr><th>${esc(t("air.day"))}</th><th>AQI</th><th>${esc(t("air.level"))}</th><th>${esc(t("air.primary"))}</th>${heads}` +
    `<th>${esc(t("air.overLimits"))}</th><th>${esc(t("air.heavy"))}</th><th>${esc(t("air.standard"))}</th></tr></thead><tbody>${body}</tbody></table>`;
}

// the heavy-pollution days in the report, and the run going on now (city plans key on it)
export function heavySummary(report) {
  const heavy = report.days.filter((d) => d.heavy).length;
  const now = report.heavy_days_now || 0;
  return now > 0
    ? `<span class="sev-critical" data-heavy-now="${now}">${esc(t("air.heavyNow", { n: now }))}</span> · ${esc(t("air.heavyCount", { n: heavy }))}`
    : `<span data-heavy-now="0">${esc(t("air.heavyCount", { n: heavy }))}</span>`;
}

function fmtDay(text) {
  const p = chinaParts(parseTs(text));
  return `${p.y}-${pad(p.mo)}-${pad(p.d)}`;
}

// ---- the data audit beside the data (#20 items 11, 12): marks in force, maintenance records

export const ORIGINS = ["auto", "manual", "maintenance", "flag"];
// a word of the audit in the page's language, else the service's own (its language)
const said = (key, fallback) => {
  const text = t(key);
  return text === key ? (fallback || key.split(".").pop()) : text;
};
export const kindName = (r) => said(`air.kind.${r.kind}`, r.kind_text);
// a mark's reason; a maintenance window's with its record's kind ("维护（校准）"), when the page
// has the record (`record_kind`, set from /api/air/maintenance)
export function reasonName(m) {
  const reason = said(`air.reason.${m.reason}`, m.reason_text);
  return m.record_kind ? t("air.reasonKind", { r: reason, k: kindName({ kind: m.record_kind }) }) : reason;
}
export const originName = (origin) => said(`air.origin.${origin}`, origin);
const pollutantOf = (p) => (p === "*" ? t("air.allPollutants") : pollutantName(p));
const msOf = (ns) => Math.round(Number(ns) / 1e6);

// Does a mark in force leave out data of this pollutant (any pollutant: null) in [from, to)?
export const markTouches = (m, fromMs, toMs, pollutant = null) =>
  msOf(m.start_ns) < toMs && msOf(m.end_ns) > fromMs &&
  (pollutant === null || m.pollutant === "*" || m.pollutant === pollutant);

// The marks' spans over the range, for that pollutant (null: any), clipped to the range and
// merged where they touch: [{fromMs, toMs, reasons: [text]}], oldest first.
export function markSpans(marks, range, pollutant = null) {
  const spans = marks
    .filter((m) => markTouches(m, range.fromMs, range.toMs, pollutant))
    .map((m) => ({ fromMs: Math.max(msOf(m.start_ns), range.fromMs), toMs: Math.min(msOf(m.end_ns), range.toMs), reasons: [reasonName(m)] }))
    .sort((a, b) => a.fromMs - b.fromMs);
  const merged = [];
  for (const s of spans) {
    const last = merged[merged.length - 1];
    if (last && s.fromMs <= last.toMs) {
      last.toMs = Math.max(last.toMs, s.toMs);
      for (const r of s.reasons) if (!last.reasons.includes(r)) last.reasons.push(r);
    } else merged.push(s);
  }
  return merged;
}

// grey bands over the marked spans (an ECharts markArea), named by their reasons on three
// staggered rows so that the names of bands close together do not overlap; too many bands
// (a week of them) go unnamed: the marks' table names them
export function markArea(spans, big = 1) {
  const named = spans.length <= 8;
  return {
    silent: true,
    itemStyle: { color: "rgba(128, 128, 128, 0.22)" },
    label: { show: named, color: css("--muted"), fontSize: 10 * big, position: "insideTop" },
    data: spans.map((s, i) => [
      { xAxis: s.fromMs, name: s.reasons.join(lang() === "zh" ? "、" : ", "), label: { offset: [0, (i % 3) * 13 * big] } },
      { xAxis: s.toMs },
    ]),
  };
}

// "11-24 10:00–12:00" within a day (to its end: "–24:00"), else "11-24 22:00 – 11-25 02:00";
// a record without a window: its time. China time.
export function fmtSpan(fromMs, toMs) {
  const a = chinaParts(fromMs);
  const day = (p) => `${pad(p.mo)}-${pad(p.d)}`;
  const clock = (p) => `${pad(p.h)}:${pad(p.mi)}`;
  if (toMs <= fromMs) return `${day(a)} ${clock(a)}`;
  const b = chinaParts(toMs);
  if (day(a) === day(b)) return `${day(a)} ${clock(a)}–${clock(b)}`;
  const b0 = chinaParts(toMs - 1);
  if (day(a) === day(b0) && b.h === 0 && b.mi === 0) return `${day(a)} ${clock(a)}–24:00`;
  return `${day(a)} ${clock(a)} – ${day(b)} ${clock(b)}`;
}

// a mark's note; a maintenance window's is its record's ("calibration: …" in the store)
const noteOf = (m) => (m.record_kind && m.note && m.note.startsWith(`${m.record_kind}: `) ? m.note.slice(m.record_kind.length + 2) : m.note);

// The marks in force, newest first: what (pollutant), which hours, why, who, automatic or by hand.
export function marksTableHtml(marks) {
  if (!marks.length) return `<p class="empty">${esc(t("air.marksNone"))}</p>`;
  const rows = [...marks].sort((a, b) => b.start_ns - a.start_ns).map((m) =>
    `<tr data-mark="${esc(m.id)}" data-origin="${esc(m.origin)}" data-pollutant="${esc(m.pollutant)}">` +
    `<td>${esc(pollutantOf(m.pollutant))}</td><td>${esc(fmtSpan(msOf(m.start_ns), msOf(m.end_ns)))}</td>` +
    `<td data-reason="${esc(m.reason)}">${esc(reasonName(m))}</td><td><small>${esc(noteOf(m) || "—")}</small></td>` +
    `<td>${esc(m.origin === "auto" ? t("air.byAudit") : m.by || "—")}</td>` +
    `<td><span class="chip${m.origin === "manual" ? " sev-warning" : ""}">${esc(originName(m.origin))}</span></td></tr>`).join("");
  return `<table><thead><tr><th>${esc(t("air.pollutant"))}</th><th>${esc(t("air.markHours"))} (${esc(t("zone.short"))})</th>` +
    `<th>${esc(t("air.reason"))}</th><th>${esc(t("air.note"))}</th><th>${esc(t("air.by"))}</th><th>${esc(t("air.how"))}</th></tr></thead><tbody>${rows}</tbody></table>`;
}

// The maintenance records (运维记录), newest first: kind, window, analyser, note, who.
export function maintenanceTableHtml(records) {
  if (!records.length) return `<p class="empty">${esc(t("air.maintenanceNone"))}</p>`;
  const rows = [...records].sort((a, b) => b.start_ns - a.start_ns).map((r) => {
    const windowed = r.end_ns > r.start_ns;
    const when = esc(fmtSpan(msOf(r.start_ns), msOf(r.end_ns))) + (windowed ? "" : ` <small class="empty">${esc(t("air.noWindow"))}</small>`);
    return `<tr data-record="${esc(r.id)}" data-kind="${esc(r.kind)}"${windowed ? " data-window" : ""}>` +
      `<td>${esc(kindName(r))}</td><td>${when}</td><td>${esc(pollutantOf(r.pollutant))}</td>` +
      `<td><small>${esc(r.note || "—")}</small></td><td>${esc(r.by || "—")}</td></tr>`;
  }).join("");
  return `<table><thead><tr><th>${esc(t("air.kind"))}</th><th>${esc(t("air.window"))} (${esc(t("zone.short"))})</th>` +
    `<th>${esc(t("air.pollutant"))}</th><th>${esc(t("air.note"))}</th><th>${esc(t("air.by"))}</th></tr></thead><tbody>${rows}</tbody></table>`;
}
