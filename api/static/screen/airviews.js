// The air charts the air page and the wall display both draw: hourly AQI coloured by its
// HJ 633-2012 level, and a pollutant against its GB 3095-2012 class II limits, exceedances marked.
import { chart, css } from "./common.js";
import { chinaParts, lang, levelOf, limits, parseTs, pollutantName, pollutantUnit, t } from "./i18n.js";

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
export const H = 3600 * 1000;

export function exceedances(rows, pollutant) {
  const found = [];
  for (const [series, limitKey] of LIMITED[pollutant]) {
    const limit = limits()[limitKey];
    for (const row of rows) {
      const v = row[series];
      if (typeof v === "number" && limit !== undefined && v > limit) {
        found.push({ ms: parseTs(row.hour), series, limitKey, value: v, limit });
      }
    }
  }
  return found;
}

export function renderAqiChart(el, rows, range, { wall = false } = {}) {
  const big = wall ? 1.6 : 1;
  const muted = css("--muted");
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
        label: { color: muted, formatter: "100", position: "insideEndTop" }, data: [{ yAxis: 100 }],
      },
    }],
  }, true);
}

export function renderPollutantChart(el, rows, pollutant, range, { wall = false } = {}) {
  const big = wall ? 1.6 : 1;
  const muted = css("--muted");
  const alarm = css("--alarm");
  const series = [];
  const seriesKeys = [pollutant, ...LIMITED[pollutant].map(([k]) => k).filter((k) => k !== pollutant)];
  const names = { [pollutant]: `${pollutantName(pollutant)} ${t("air.hourlyMeans")}` };
  for (const key of seriesKeys) {
    const data = rows.filter((r) => typeof r[key] === "number").map((r) => [parseTs(r.hour) + H / 2, r[key]]);
    if (!data.length) continue;
    series.push({
      type: "line", name: names[key] || key.replace(pollutant + "_", pollutantName(pollutant) + " ").replace("24h", lang() === "zh" ? "24小时滑动" : "24-h moving").replace("8h", lang() === "zh" ? "8小时滑动" : "8-h moving"),
      data, showSymbol: data.length < 60, symbolSize: 4 * big, lineStyle: { width: 2 * big },
    });
  }
  const marks = LIMITED[pollutant].map(([, limitKey]) => limits()[limitKey]).filter((v) => v !== undefined);
  if (series.length) {
    series[0].markLine = {
      silent: true, symbol: "none", lineStyle: { color: alarm, type: "dashed" },
      label: { color: alarm, formatter: (p) => `${t("air.limit")} ${p.value}`, position: "insideEndTop", fontSize: 11 * big },
      data: LIMITED[pollutant].map(([, k]) => ({ yAxis: limits()[k], name: k })).filter((d) => d.yAxis !== undefined),
    };
  }
  const over = exceedances(rows, pollutant);
  series.push({
    type: "scatter", name: t("air.exceed"), symbolSize: 11 * big, itemStyle: { color: alarm },
    data: over.map((e) => [e.ms + H / 2, e.value]), z: 5,
  });
  const top = Math.max(...marks, ...rows.flatMap((r) => seriesKeys.map((k) => (typeof r[k] === "number" ? r[k] : 0))));
  chart(el).setOption({
    animation: false,
    legend: { top: 0, textStyle: { color: muted, fontSize: 12 * big } },
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


// a limit's key (GB 3095-2012: pollutant and averaging period) in words
export function limitName(key) {
  const [p, period] = key.split("_");
  const words = {
    "1h": lang() === "zh" ? "小时均值" : "1-h mean",
    "24h": lang() === "zh" ? "24小时滑动均值" : "24-h moving mean",
    "8h": lang() === "zh" ? "8小时滑动均值" : "8-h moving mean",
  };
  return `${pollutantName(p)} ${words[period] || period}`;
}
