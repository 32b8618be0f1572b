// 设备与视频: the registry (what stands where) with each device's state, last report,
// battery, signal and clock; each camera's frame metrics as sparklines and its latest
// evidence snapshot.
import { api, boot, chart, css, esc, fresh, onLang, startLive } from "./common.js";
import { apply, familyName, fmtNumber, fmtTs, locationName, t } from "./i18n.js";

const METRICS = ["brightness", "sharpness", "motion", "occlusion"];
const FAMILIES = ["rfid", "scale", "terminal", "air", "camera"];

function spark(el, frames, metric) {
  const accent = metric === "occlusion" ? css("--alarm") : css("--accent");
  chart(el).setOption({
    animation: false,
    grid: { left: 2, right: 2, top: 4, bottom: 2 },
    xAxis: { type: "time", show: false },
    yAxis: { type: "value", show: false, min: metric === "occlusion" ? 0 : undefined, max: metric === "occlusion" ? 1 : undefined, scale: metric !== "occlusion" },
    tooltip: { trigger: "axis", confine: true },
    series: [{
      type: "line", showSymbol: false, lineStyle: { width: 1.5, color: accent }, areaStyle: { color: accent, opacity: 0.12 },
      data: frames.filter((f) => typeof f[metric] === "number").map((f) => [f.ts_ms, f[metric]]),
    }],
  }, true);
}

boot(async (main) => {
  main.innerHTML = `
    <section class="panel">
      <div class="toolbar"><h2 data-i18n="dev.registry" style="margin:0 12px 0 0"></h2><span id="families" class="seg"></span></div>
      <div id="table" class="table-wrap"></div>
    </section>
    <section class="section"><h2 data-i18n="dev.cameras"></h2><div id="cameras" class="cameras"></div></section>`;
  apply(main);
  const $ = (id) => document.getElementById(id);
  let family = "";
  let page = null;
  let cameras = [];

  const renderTable = () => {
    const counts = page.by_family;
    $("families").innerHTML = [["", t("dev.all"), page.total], ...FAMILIES.map((f) => {
      const c = counts[f] || { online: 0, offline: 0, unknown: 0 };
      return [f, familyName(f), c.online + c.offline + c.unknown, c];
    })].map(([f, name, n, c]) => `<button type="button" data-family="${f}" aria-pressed="${f === family}">${esc(name)} ${c ? `${c.online}/` : ""}${n}</button>`).join("");
    const rows = page.devices.filter((d) => !family || d.family === family);
    const head = ["dev.site", "dev.family", "dev.device", "dev.where", "dev.state", "dev.lastSeen", "dev.battery", "dev.signal", "dev.fw", "dev.clock"];
    // the HJ 212 edition an air station's newest packet spoke (its Flag), a standard's name in any language
    $("table").innerHTML = `<table><thead><tr>${head.map((k) => `<th>${esc(t(k))}</th>`).join("")}<th>HJ 212</th></tr></thead><tbody>` +
      rows.map((d) => {
        const where = d.location ? locationName(d.location) : d.watches ? `${t("dev.watches")} ${d.watches.join(", ")}` : d.mn ? `MN ${d.mn}` : "—";
        const battery = typeof d.battery_pct === "number"
          ? `<span class="battery ${d.battery_pct < 20 ? "low" : ""}"><span style="width:${Math.max(0, Math.min(100, d.battery_pct))}%"></span></span> ${fmtNumber(d.battery_pct)}%` : "—";
        const clock = typeof d.clock_offset_s === "number" ? `<span class="${d.clock_skewed ? "verdict-broken" : ""}">${d.clock_offset_s > 0 ? "+" : ""}${fmtNumber(d.clock_offset_s, 1)} s</span>` : "—";
        return `<tr data-device="${esc(d.device)}" data-state="${d.state}"><td>${esc(d.site)}</td><td>${esc(familyName(d.family))}</td><td>${esc(d.device)}</td>` +
          `<td>${esc(where)}</td><td class="state-${d.state}">${esc(t("dev." + d.state))}</td>` +
          `<td>${esc(d.last_seen ? fmtTs(d.last_seen) : "—")}</td><td>${battery}</td>` +
          `<td>${typeof d.rssi_dbm === "number" ? `${fmtNumber(d.rssi_dbm)} dBm` : "—"}</td><td>${esc(d.fw || "—")}</td><td>${clock}</td>` +
          `<td data-edition="${esc(d.edition || "")}">${esc(d.edition ? d.edition.replace(/^HJ\/?T? ?212-/, "") : "—")}</td></tr>`;
      }).join("") + "</tbody></table>";
  };

  const renderCameras = () => {
    const root = $("cameras");
    const keys = cameras.map((c) => `${c.site}/${c.camera}`).join("|");
    if (root.dataset.keys !== keys) {
      root.dataset.keys = keys;
      root.innerHTML = cameras.map((c) => `<div class="panel camera" data-camera="${esc(c.site)}/${esc(c.camera)}">` +
        `<h3>${esc(c.camera)} <small>(${esc(c.site)})</small></h3><div class="metrics">` +
        METRICS.map((m) => `<div class="metric"><div class="name"><span data-i18n="dev.${m}">${esc(t("dev." + m))}</span><b data-value="${m}"></b></div><div class="spark" data-metric="${m}"></div></div>`).join("") +
        `</div><div class="snap"></div></div>`).join("") || `<p class="empty">${esc(t("none"))}</p>`;
    }
    for (const c of cameras) {
      const card = root.querySelector(`[data-camera="${CSS.escape(`${c.site}/${c.camera}`)}"]`);
      if (!card) continue;
      const last = c.frames[c.frames.length - 1] || {};
      for (const m of METRICS) {
        spark(card.querySelector(`[data-metric="${m}"]`), c.frames, m);
        card.querySelector(`[data-value="${m}"]`).textContent = typeof last[m] === "number" ? fmtNumber(last[m], m === "brightness" || m === "sharpness" ? 0 : 2) : "—";
      }
      const snap = card.querySelector(".snap");
      const name = c.snapshots[0];
      const html = name
        ? `<a href="/api/snapshots/${encodeURIComponent(name)}" target="_blank"><img src="/api/snapshots/${encodeURIComponent(name)}" alt="${esc(t("dev.snapshot"))}"></a><small>${esc(t("dev.snapshot"))}: ${esc(name)}</small>`
        : `<p class="empty">${esc(c.frames.length ? t("dev.noSnapshot") : t("dev.noFrames"))}</p>`;
      if (snap.dataset.name !== (name || "")) { snap.dataset.name = name || ""; snap.innerHTML = html; }
    }
  };

  const load = async () => {
    page = await api("/api/devices?limit=10000");
    const cams = page.devices.filter((d) => d.family === "camera");
    cameras = await Promise.all(cams.map((d) =>
      api(`/api/cameras/${encodeURIComponent(d.site)}/${encodeURIComponent(d.device)}/frames?minutes=15&limit=300`)
        .catch(() => ({ site: d.site, camera: d.device, frames: [], snapshots: [] }))));
    fresh();
    renderTable();
    renderCameras();
  };

  $("families").addEventListener("click", (e) => {
    const button = e.target.closest("button");
    if (button) { family = button.dataset.family; renderTable(); }
  });
  await load();
  setInterval(() => load().catch((err) => console.warn("devices", err)), 10000);
  onLang(() => { apply(main); renderTable(); for (const el of main.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n); });
  startLive({ onLive: () => load().catch(() => {}) });
});
