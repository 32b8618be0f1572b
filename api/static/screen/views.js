// Pieces the overview page and the wall display both draw: KPI tiles, the site map, batches
// by stage, the sites table, air stations, the live feed list, recent alerts, ingest health.
import { chart, css, esc, setText } from "./common.js";
import {
  changeName, familyName, fmtClock, fmtNumber, fmtTs, lang, levelOf, levels, parseTs, pollutantName,
  roleName, ruleName, severityName, stageName, t, verdictName,
} from "./i18n.js";

const SEVERITIES = ["critical", "major", "warning", "info"];
const STATE_COLOUR = () => ({ ok: css("--ok"), warning: css("--warning"), alarm: css("--alarm") });

export function kpiHtml() {
  const tile = (key, label) =>
    `<div class="kpi" data-kpi="${key}"><div class="label" data-i18n="${label}">${esc(t(label))}</div>` +
    `<div class="value">—</div><div class="sub"></div></div>`;
  return `<section class="kpis">${tile("batches", "kpi.batches")}${tile("storage", "kpi.storage")}` +
    `${tile("alerts", "kpi.alerts")}${tile("devices", "kpi.devices")}${tile("rate", "kpi.rate")}` +
    `${tile("deadletters", "kpi.deadletters")}</section>`;
}

export function renderKpis(root, data) {
  const total = data.total;
  const get = (key) => root.querySelector(`[data-kpi="${key}"]`);
  const put = (key, value, unit, sub, alarm = false) => {
    const el = get(key);
    if (!el) return;
    el.classList.toggle("alarm", alarm);
    const valueEl = el.querySelector(".value");
    const html = `${esc(value)}${unit ? `<small>${esc(unit)}</small>` : ""}`;
    if (valueEl.innerHTML !== html) valueEl.innerHTML = html;
    const subEl = el.querySelector(".sub");
    if (subEl.innerHTML !== sub) subEl.innerHTML = sub;
  };
  const v = total.batches.by_verdict;
  put("batches", fmtNumber(total.batches.total), t("unit.batches"),
    ["open", "complete", "broken"].map((k) => `<span class="verdict-${k}">${esc(verdictName(k))} ${fmtNumber(v[k])}</span>`).join(""),
    v.broken > 0);
  const storage = total.storage;
  const share = storage.limit_kg ? storage.kg / storage.limit_kg : 0;
  put("storage", fmtNumber(storage.kg, 1), t("unit.kg"),
    `<span>/ ${fmtNumber(storage.limit_kg)} kg (${fmtNumber(share * 100, 1)}%)</span><span>${fmtNumber(storage.batches)} ${esc(t("unit.batches") || "batches")}</span>`,
    share > 1);
  const a = total.alerts;
  put("alerts", fmtNumber(a.open + a.acknowledged), "",
    SEVERITIES.filter((s) => a.by_severity[s]).map((s) => `<span class="sev-${s}">${esc(severityName(s))} ${a.by_severity[s]}</span>`).join("") ||
      `<span>${esc(t("none"))}</span>`,
    a.by_severity.critical + a.by_severity.major > 0);
  let on = 0, all = 0;
  const fam = [];
  for (const [family, c] of Object.entries(total.devices)) {
    const n = c.online + c.offline + c.unknown;
    if (!n) continue;
    on += c.online; all += n;
    fam.push(`<span>${esc(familyName(family))} ${c.online}/${n}</span>`);
  }
  put("devices", `${fmtNumber(on)}`, `/ ${fmtNumber(all)}`, fam.join(""));
  const ingest = data.ingest;
  put("rate", ingest.messages_per_s === null || ingest.messages_per_s === undefined ? "—" : fmtNumber(ingest.messages_per_s, 1), t("unit.msgs"),
    `<span class="${ingest.status === "up" ? "state-ok" : "state-alarm"}">${esc(t(ingest.status === "up" ? "ov.ingestUp" : "ov.ingestDegraded"))}</span>` +
      `<span>${esc(t("kpi.spool"))} ${fmtNumber(ingest.spool_segments ?? 0)}</span>`,
    ingest.status !== "up");
  put("deadletters", fmtNumber(ingest.deadletters), "",
    `<span>${fmtNumber(ingest.deadletters_per_min ?? 0, 1)} ${esc(t("unit.perMin"))}</span>`);
}

function siteLabel(site) {
  return site.name ? site.name : site.id;
}

// The site map: a schematic without tiles. Each site sits in the direction its registry
// coordinates give from the median site, at a distance compressed logarithmically, so that one
// 500 km away stays on screen (schematic: x and y in [-1, 1]).
export function schematic(sites) {
  const placed = sites.filter((s) => s.lat !== null && s.lon !== null);
  if (!placed.length) return [];
  const median = (xs) => { const v = [...xs].sort((a, b) => a - b); return v[Math.floor(v.length / 2)]; };
  const lat0 = median(placed.map((s) => s.lat)), lon0 = median(placed.map((s) => s.lon));
  const kmLat = 111.32, kmLon = 111.32 * Math.cos((lat0 * Math.PI) / 180);
  const pts = placed.map((s) => {
    const x = (s.lon - lon0) * kmLon, y = (s.lat - lat0) * kmLat;
    const r = Math.hypot(x, y);
    const k = r > 0 ? Math.log1p(r / 2) / r : 0;
    return { site: s, x: x * k, y: y * k, km: r };
  });
  const span = Math.max(1e-9, ...pts.map((p) => Math.max(Math.abs(p.x), Math.abs(p.y))));
  for (const p of pts) { p.x /= span; p.y /= span; }
  return pts;
}

let measurer = null;
function textWidth(text, px) {
  measurer = measurer || document.createElement("canvas").getContext("2d");
  measurer.font = `${px}px ${css("--font")}`;
  return measurer.measureText(text).width;
}

const overlap = (a, b, gap) => a.x0 < b.x1 + gap && b.x0 < a.x1 + gap && a.y0 < b.y1 + gap && b.y0 < a.y1 + gap;

// Where each site and its label go on a map `width` × `height` px: the schematic scaled into
// it (one scale for both axes, so bearings hold) with room for the labels, then every box of
// a symbol and its two-line label kept clear of the others: pushed apart up and down within
// the map, a label turned to the left of its symbol when that clears it (deterministic: the
// same sites at the same size always land in the same places).
export function layoutSites(sites, width, height, { big = 1, note = 0 } = {}) {
  const pts = schematic(sites);
  if (!pts.length) return [];
  const font = 12 * big, small = 11 * big, gap = 6, pad = 8 * big;
  for (const p of pts) {
    p.size = (14 + Math.min(20, Math.sqrt(p.site.batches.total || 0) * 3)) * big;
    p.name = siteLabel(p.site);
    p.sub = `${p.site.id} · ${t("state." + p.site.state)}`;
    p.w = Math.ceil(Math.max(textWidth(p.name, font), textWidth(p.sub, small))) + 2;
    p.h = Math.max(p.size, Math.ceil((font + small) * 1.3));
    p.side = "right";
  }
  const labelRoom = Math.max(...pts.map((p) => p.size / 2 + gap + p.w));
  const maxH = Math.max(...pts.map((p) => p.h));
  const left = pad + Math.max(...pts.map((p) => p.size / 2)), right = Math.max(left + 1, width - pad - labelRoom);
  const top = pad + maxH / 2, bottom = Math.max(top + 1, height - note - pad - maxH / 2);
  const xs = pts.map((p) => p.x), ys = pts.map((p) => p.y);
  const dx = Math.max(...xs) - Math.min(...xs), dy = Math.max(...ys) - Math.min(...ys);
  const scale = Math.min(dx > 0 ? (right - left) / dx : Infinity, dy > 0 ? (bottom - top) / dy : Infinity);
  const k = Number.isFinite(scale) ? scale : 0;
  const cx = (left + right) / 2 - ((Math.max(...xs) + Math.min(...xs)) / 2) * k;
  const cy = (top + bottom) / 2 + ((Math.max(...ys) + Math.min(...ys)) / 2) * k;
  const box = (p) => ({
    x0: p.side === "right" ? p.px - p.size / 2 : p.px - p.size / 2 - gap - p.w,
    x1: p.side === "right" ? p.px + p.size / 2 + gap + p.w : p.px + p.size / 2,
    y0: p.py - p.h / 2, y1: p.py + p.h / 2,
  });
  for (const p of pts) { p.px = cx + p.x * k; p.py = cy - p.y * k; }
  const clamp = (p) => { p.py = Math.min(height - note - pad - p.h / 2, Math.max(pad + p.h / 2, p.py)); };
  const order = [...pts].sort((a, b) => a.py - b.py || a.site.id.localeCompare(b.site.id));
  for (let round = 0; round < 300; round++) {
    let moved = false;
    for (let i = 0; i < order.length; i++) {
      for (let j = i + 1; j < order.length; j++) {
        const a = order[i], b = order[j]; // a is above (or level with) b
        if (!overlap(box(a), box(b), 2)) continue;
        const turned = [a, b].find((p) => {
          if (p.side !== "right" || p.px - p.size / 2 - gap - p.w < pad) return false;
          p.side = "left";
          if (!pts.some((q) => q !== p && overlap(box(p), box(q), 2))) return true;
          p.side = "right";
          return false;
        });
        if (turned) { moved = true; continue; }
        const push = (Math.min(box(a).y1, box(b).y1) - Math.max(box(a).y0, box(b).y0) + 3) / 2;
        a.py -= push; b.py += push;
        clamp(a); clamp(b);
        moved = true;
      }
    }
    order.sort((a, b) => a.py - b.py || a.site.id.localeCompare(b.site.id));
    if (!moved) break;
  }
  for (const p of pts) p.box = box(p);
  return pts;
}

const mapData = new WeakMap(); // the element → what it last drew, redrawn when it is resized
const mapWatch = typeof ResizeObserver === "undefined" ? null : new ResizeObserver((entries) => {
  for (const entry of entries) {
    const last = mapData.get(entry.target);
    if (last && entry.target.clientWidth && (entry.target.clientWidth !== last.width || entry.target.clientHeight !== last.height)) {
      renderMap(entry.target, last.data, last.options);
    }
  }
});

export function renderMap(el, data, options = {}) {
  const { wall = false } = options;
  const colours = STATE_COLOUR();
  const text = css("--text");
  const big = wall ? 1.6 : 1;
  const width = el.clientWidth, height = el.clientHeight;
  if (!mapData.has(el) && mapWatch) mapWatch.observe(el);
  mapData.set(el, { data, options, width, height });
  if (!width || !height) return; // hidden: drawn when it is shown (the observer)
  const note = 22 * big;
  const placed = layoutSites(data.sites, width, height, { big, note });
  el.dataset.sites = String(placed.length);
  chart(el).setOption({
    animation: false,
    grid: { left: 0, right: 0, top: 0, bottom: 0 },
    tooltip: {
      formatter: (p) => {
        const s = p.data.site;
        return `${esc(siteLabel(s))} (${esc(s.id)})<br>${esc(roleName(s.role))} · ${esc(t("state." + s.state))}<br>` +
          `${s.lat.toFixed(3)}°N ${s.lon.toFixed(3)}°E<br>` +
          `${esc(t("ov.batches"))} ${s.batches.total} · ${esc(verdictName("broken"))} ${s.batches.by_verdict.broken}`;
      },
    },
    xAxis: { type: "value", min: 0, max: width, show: false },
    yAxis: { type: "value", min: 0, max: height, inverse: true, show: false },
    graphic: [{
      type: "text", left: 8, bottom: 4,
      style: { text: t("ov.mapNote"), fill: css("--muted"), fontSize: 11 * big, fontFamily: css("--font") },
    }],
    series: [{
      type: "scatter",
      data: placed.map((p) => ({
        name: p.name, value: [p.px, p.py, p.site.batches.total], site: p.site, symbolSize: p.size,
        itemStyle: { color: colours[p.site.state] || colours.ok, borderColor: text, borderWidth: 1 },
        label: { position: p.side, align: p.side === "right" ? "left" : "right" },
      })),
      label: {
        show: true, position: "right", color: text, fontSize: 12 * big, distance: 6,
        fontFamily: css("--font"), lineHeight: Math.round(12 * big * 1.3),
        formatter: (p) => `${p.data.name}\n{s|${p.data.site.id} · ${t("state." + p.data.site.state)}}`,
        rich: { s: { color: css("--muted"), fontSize: 11 * big, lineHeight: Math.round(11 * big * 1.3) } },
      },
      labelLayout: { hideOverlap: false },
      emphasis: { scale: 1.3 },
    }],
  }, true);
}

export function renderStages(el, data, { wall = false } = {}) {
  const total = data.total.batches;
  const stages = Object.keys(total.by_stage);
  const crossed = total.by_stage_verdict || {};
  const colour = { open: css("--accent"), complete: css("--ok"), broken: css("--alarm") };
  const big = wall ? 1.6 : 1;
  const muted = css("--muted");
  chart(el).setOption({
    animation: false,
    tooltip: { trigger: "item" },
    legend: { bottom: 0, textStyle: { color: muted, fontSize: 12 * big }, itemWidth: 14 * big, itemHeight: 10 * big },
    grid: { left: 40, right: "34%", top: 10, bottom: (lang() === "en" ? 72 : 52) * big },
    xAxis: {
      type: "category", data: stages.map(stageName),
      axisLabel: {
        color: muted, fontSize: 12 * big, interval: 0, lineHeight: 14 * big,
        // 转移出库 in two lines, as the others' two characters are wide; English words slanted
        rotate: lang() === "en" ? 30 : 0,
        formatter: (v) => (/^[\u4e00-\u9fff]{4}$/.test(v) ? `${v.slice(0, 2)}\n${v.slice(2)}` : v),
      },
      axisLine: { lineStyle: { color: css("--line") } },
    },
    yAxis: { type: "value", minInterval: 1, axisLabel: { color: muted, fontSize: 11 * big }, splitLine: { lineStyle: { color: css("--line") } } },
    series: [
      ...["open", "complete", "broken"].map((v) => ({
        name: verdictName(v), type: "bar", stack: "stage", barMaxWidth: 36 * big,
        itemStyle: { color: colour[v] },
        data: stages.map((s) => (crossed[s] ? crossed[s][v] || 0 : 0)),
      })),
      {
        name: t("ov.verdicts"), type: "pie", radius: ["18%", "30%"], center: ["84%", "42%"],
        label: { position: "inside", color: "#fff", fontSize: 12 * big, fontWeight: 700, formatter: "{c}" },
        data: ["open", "complete", "broken"].filter((v) => total.by_verdict[v])
          .map((v) => ({ name: verdictName(v), value: total.by_verdict[v], itemStyle: { color: colour[v] } })),
      },
    ],
  }, true);
}

const STATE_RANK = { alarm: 0, warning: 1, ok: 2 };

export function sitesTableHtml(data, { rows: most = Infinity } = {}) {
  const head = ["ov.site", "ov.role", "ov.state", "ov.batches", "ov.storage", "ov.alerts", "ov.devices"]
    .map((k) => `<th>${esc(t(k))}</th>`).join("");
  const sites = Number.isFinite(most)
    ? [...data.sites].sort((a, b) => STATE_RANK[a.state] - STATE_RANK[b.state]).slice(0, most)
    : data.sites;
  const rows = sites.map((s) => {
    const v = s.batches.by_verdict;
    const storage = s.storage
      ? (() => {
          const share = s.storage.share || 0;
          const cls = share > 1 ? "over" : share > 0.9 ? "warn" : "";
          return `${fmtNumber(s.storage.kg, 1)} / ${fmtNumber(s.storage.limit_kg)} kg` +
            `<div class="gauge ${cls}"><span style="width:${Math.min(100, share * 100).toFixed(1)}%"></span></div>`;
        })()
      : "—";
    const alerts = SEVERITIES.filter((k) => s.alerts.by_severity[k])
      .map((k) => `<span class="chip sev-${k}">${esc(severityName(k))} ${s.alerts.by_severity[k]}</span>`).join(" ") || "—";
    let on = 0, off = 0, unknown = 0;
    for (const c of Object.values(s.devices)) { on += c.online; off += c.offline; unknown += c.unknown; }
    return `<tr data-site="${esc(s.id)}"><td>${esc(siteLabel(s))}<br><small>${esc(s.id)}</small></td>` +
      `<td>${esc(roleName(s.role) || "—")}</td>` +
      `<td class="state-${s.state}">${esc(t("state." + s.state))}</td>` +
      `<td>${s.batches.total} <small><span class="verdict-open">${v.open}</span> / <span class="verdict-complete">${v.complete}</span> / <span class="verdict-broken">${v.broken}</span></small></td>` +
      `<td>${storage}</td><td>${alerts}</td>` +
      `<td><span class="state-online">${on}</span> / <span class="state-offline">${off}</span>${unknown ? ` <small class="state-unknown">(${unknown} ${esc(t("dev.unknown"))})</small>` : ""}</td></tr>`;
  }).join("");
  const hidden = data.sites.length - sites.length;  // the wall shows the worst few: say how many more
  const more = hidden > 0
    ? `<tr class="more"><td colspan="7">${esc(t("ov.moreSites", { n: hidden }))}</td></tr>`
    : "";
  return `<table><thead><tr>${head}</tr></thead><tbody>${rows}${more}</tbody></table>`;
}

export function aqiBadge(aqi) {
  const level = levelOf(aqi);
  if (!level) return `<span class="aqi" style="background:var(--gauge-bg)">—</span>`;
  const dark = level.level >= 4;
  return `<span class="aqi" style="background:${level.rgb};color:${dark ? "#fff" : "#111"}">${aqi}</span>`;
}

export function stationsHtml(data) {
  if (!data.air.length) return `<p class="empty">${esc(t("air.noStation"))}</p>`;
  return data.air.map((s) => {
    const level = levelOf(s.aqi);
    const latest = s.latest || {};
    const readings = ["pm25", "pm10", "o3", "no2", "so2", "co"].filter((p) => latest[p] !== undefined)
      .map((p) => `<span>${esc(pollutantName(p))} ${fmtNumber(latest[p], p === "co" ? 2 : 0)}</span>`).join("");
    const primary = s.primary ? s.primary.split(",").map(pollutantName).join("、") : "—";
    return `<div class="station" data-station="${esc(s.station)}"><div><b>${esc(s.station)}</b> <small>${esc(s.site)}</small></div>` +
      `<div class="big">${aqiBadge(s.aqi)}</div>` +
      `<div>${level ? esc(level.name[lang()]) : esc(t("air.noHour"))}${s.hour ? ` · ${esc(t("air.hour"))} ${esc(fmtTs(s.hour).slice(5, 16))}` : ""}</div>` +
      `<div><small>${esc(t("air.primary"))}: ${esc(primary)}</small></div>` +
      `<div class="readings">${readings}</div>` +
      `<div><small>${esc(t("air.latest"))} ${esc(latest.ts ? fmtTs(latest.ts).slice(11) : "—")}</small></div></div>`;
  }).join("");
}

export function levelLegendHtml() {
  return `<div class="legend">${levels().map((l) =>
    `<span style="background:${l.rgb};color:${l.level >= 4 ? "#fff" : "#111"}">${l.low}–${l.high} ${esc(l.name[lang()])}</span>`).join("")}</div>`;
}

// The live feed list: newest on top, at most `max` items kept in the page.
export class FeedList {
  constructor(el, max = 40) {
    this.el = el;
    this.max = max;
    this.items = [];
    this.seen = new Set();
  }

  add(events, { flash = true } = {}) {
    let added = 0;
    for (const event of events) {
      if (this.seen.has(event.key)) {
        // the same event again (a pass that went on, read again): changed in place
        const at = this.items.findIndex((item) => item.key === event.key);
        if (at >= 0) this.items[at] = { ...event, fresh: false };
        added += 1;
        continue;
      }
      this.seen.add(event.key);
      this.items.unshift({ ...event, fresh: flash });
      added += 1;
    }
    this.items.sort((a, b) => b.ts_ms - a.ts_ms);
    while (this.items.length > this.max) {
      const gone = this.items.pop();
      this.seen.delete(gone.key);
    }
    if (added) this.render();
    return added;
  }

  text(event) {
    if (event.kind === "custody") {
      const kg = event.net_kg !== null && event.net_kg !== undefined ? ` · ${fmtNumber(event.net_kg, 1)} kg` : "";
      return `${stageName(event.stage)} · ${event.batch} · ${event.site}/${event.device}${kg}`;
    }
    if (event.kind === "alert") {
      const change = event.change && event.change !== "opened" ? `${changeName(event.change)} · ` : "";
      return `${change}${severityName(event.severity)} · ${ruleName(event.rule)} · ${event.subject}`;
    }
    return `${event.reason} · ${event.topic}`;
  }

  render() {
    if (!this.items.length) {
      this.el.innerHTML = `<li class="empty">${esc(t("feed.empty"))}</li>`;
      return;
    }
    this.el.innerHTML = this.items.map((e) => {
      const cls = e.fresh ? "new" : "";
      e.fresh = false;
      const link = e.kind === "custody" ? `/screen/batch?batch=${encodeURIComponent(e.batch)}` : e.kind === "alert" ? `/screen/alerts?alert=${encodeURIComponent(e.alert_id)}` : null;
      const what = esc(this.text(e));
      return `<li class="${cls}" data-kind="${e.kind}"><span class="when">${fmtClock(e.ts_ms)}</span>` +
        `<span class="kind kind-${e.kind}">${esc(t("feed." + e.kind))}</span>` +
        `<span class="what ${e.kind === "alert" ? "sev-" + esc(e.severity) : ""}" title="${what}">${link ? `<a href="${link}">${what}</a>` : what}</span></li>`;
    }).join("");
  }
}

export function recentAlertsHtml(data) {
  if (!data.recent_alerts.length) return `<p class="empty">${esc(t("none"))}</p>`;
  const rows = data.recent_alerts.map((a) =>
    `<tr><td>${esc(fmtTs(a.opened).slice(5))}</td><td class="sev-${a.severity}">${esc(severityName(a.severity))}</td>` +
    `<td><a href="/screen/alerts?alert=${encodeURIComponent(a.alert_id)}">${esc(ruleName(a.rule))}</a></td>` +
    `<td>${esc(a.subject)}</td><td>${esc(t("astate." + a.state))}</td></tr>`).join("");
  return `<table><thead><tr><th>${esc(t("al.opened"))}</th><th>${esc(t("al.severity"))}</th><th>${esc(t("al.rule"))}</th><th>${esc(t("al.subject"))}</th><th>${esc(t("al.state"))}</th></tr></thead><tbody>${rows}</tbody></table>`;
}

export function ingestHtml(data) {
  const i = data.ingest;
  const reasons = i.reasons.length ? `<ul>${i.reasons.map((r) => `<li class="error">${esc(r)}</li>`).join("")}</ul>` : "";
  const letters = Object.entries(i.deadletters_by_reason).sort((a, b) => b[1] - a[1])
    .map(([r, n]) => `<span class="chip">${esc(r)} ${n}</span>`).join(" ") || "—";
  return `<dl class="kv"><dt>${esc(t("ov.state"))}</dt><dd class="${i.status === "up" ? "state-ok" : "state-alarm"}">${esc(t(i.status === "up" ? "ov.ingestUp" : "ov.ingestDegraded"))}</dd>` +
    `<dt>${esc(t("kpi.rate"))}</dt><dd>${fmtNumber(i.messages_per_s, 1)} ${esc(t("unit.msgs"))} · ${fmtNumber(i.messages)}</dd>` +
    `<dt>${esc(t("kpi.deadletters"))}</dt><dd>${letters}</dd>` +
    `<dt>${esc(t("kpi.spool"))}</dt><dd>${fmtNumber(i.spool_segments ?? 0)}</dd></dl>${reasons}`;
}

export const severityOrder = SEVERITIES;
export { parseTs };
