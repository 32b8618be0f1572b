// 管理台账: the hazardous-waste management ledger (HJ 1259-2022) of a site and a month, the
// same rows as `hazwatch ledger`, on screen and as CSV / XLSX from the same endpoint.
import { api, boot, esc, fresh, onLang, params, startLive } from "./common.js";
import { apply, chinaParts, labelData, lang, ledgerKindName, t } from "./i18n.js";

const pad = (n) => String(n).padStart(2, "0");

export function monthRange(month) {
  const [y, m] = month.split("-").map(Number);
  const last = new Date(Date.UTC(y, m, 0)).getUTCDate();
  return { from: `${y}-${pad(m)}-01`, to: `${y}-${pad(m)}-${pad(last)}` };
}

boot(async (main) => {
  const now = chinaParts(Date.now());
  const p = params();
  main.innerHTML = `
    <form id="form" class="toolbar">
      <label><span data-i18n="led.site"></span> <select id="site" required></select></label>
      <label><span data-i18n="led.month"></span> <input type="month" id="month" required value="${p.get("month") || `${now.y}-${pad(now.mo)}`}"></label>
      <label><span data-i18n="led.kind"></span> <select id="kind"></select></label>
      <button class="btn" type="submit" data-i18n="led.show"></button>
      <a class="btn ghost" id="csv" data-i18n="led.csv" download></a>
      <a class="btn ghost" id="xlsx" data-i18n="led.xlsx" download></a>
      <span id="status" class="empty"></span>
    </form>
    <section class="panel"><h2><span data-i18n="led.records"></span> <small id="count" class="empty"></small></h2><div id="records" class="table-wrap ledger"></div></section>
    <section class="panel section"><h2 data-i18n="led.monthly"></h2><div id="monthly" class="table-wrap"></div></section>`;
  apply(main);
  const $ = (id) => document.getElementById(id);
  const registry = await api("/api/registry");
  const sites = registry.site || [];
  let site = p.get("site") || (sites.find((s) => s.role === "producer") || sites[0] || {}).id || "";
  let kind = p.get("kind") || "";
  let ledger = null;

  const fill = () => {
    $("site").innerHTML = sites.map((s) => `<option value="${esc(s.id)}" ${s.id === site ? "selected" : ""}>${esc(s.name || s.id)} (${esc(s.id)})</option>`).join("");
    const kinds = Object.keys(labelData().ledger_kinds);
    $("kind").innerHTML = `<option value="">${esc(t("led.allKinds"))}</option>` +
      kinds.map((k) => `<option value="${k}" ${k === kind ? "selected" : ""}>${esc(ledgerKindName(k))}</option>`).join("");
  };

  const query = (format) => {
    const { from, to } = monthRange($("month").value);
    const q = new URLSearchParams({ site, from, to, format, lang: lang() });
    if (kind) q.set("kind", kind);
    return `/api/ledger?${q}`;
  };

  // the ledger's record types are its own Chinese words (HJ 1259-2022): in English, the kind's
  const recordType = (text) => {
    if (lang() === "zh") return text;
    const kinds = labelData().ledger_kinds;
    const key = Object.keys(kinds).find((k) => kinds[k].zh === text);
    return key ? kinds[key].en : text;
  };

  const render = () => {
    $("csv").href = query("csv");
    $("xlsx").href = query("xlsx");
    if (!ledger) return;
    const cols = labelData().ledger_columns;
    const sum = labelData().ledger_summary_columns;
    $("count").textContent = t("led.count", { n: ledger.records.length });
    $("records").innerHTML = ledger.records.length
      ? `<table><thead><tr>${cols.map((c) => `<th>${esc(c[lang()])}</th>`).join("")}</tr></thead><tbody>` +
        ledger.records.map((r) => `<tr>${cols.map((c) => `<td class="${c.key === "quantity" ? "num" : ""}" title="${esc(r[c.key] ?? "")}">${esc(c.key === "time" ? String(r[c.key] ?? "").replace("T", " ").slice(0, 19) : c.key === "record_type" ? recordType(r[c.key]) : r[c.key] ?? "")}</td>`).join("")}</tr>`).join("") + "</tbody></table>"
      : `<p class="empty">${esc(t("led.empty"))}</p>`;
    $("monthly").innerHTML = ledger.monthly.length
      ? `<table><thead><tr>${sum.map((c) => `<th>${esc(c[lang()])}</th>`).join("")}</tr></thead><tbody>` +
        ledger.monthly.map((r) => `<tr>${sum.map((c) => `<td class="${c.key.endsWith("_kg") ? "num" : ""}">${esc(r[c.key] ?? "")}</td>`).join("")}</tr>`).join("") + "</tbody></table>"
      : `<p class="empty">${esc(t("led.empty"))}</p>`;
  };

  const load = async () => {
    if (!site) return;
    $("status").textContent = t("loading");
    try {
      ledger = await api(query("json"));
      fresh();
      $("status").textContent = "";
    } catch (err) {
      $("status").innerHTML = `<span class="error">${esc(t("err.load", { m: err.message }))}</span>`;
    }
    render();
  };

  fill();
  $("form").addEventListener("submit", (e) => {
    e.preventDefault();
    site = $("site").value;
    kind = $("kind").value;
    history.replaceState(null, "", `?${new URLSearchParams({ site, month: $("month").value, ...(kind ? { kind } : {}) })}`);
    load();
  });
  for (const id of ["site", "kind", "month"]) $(id).addEventListener("change", () => { site = $("site").value; kind = $("kind").value; render(); });
  await load();
  onLang(() => { apply(main); fill(); load(); });
  startLive({});
});
