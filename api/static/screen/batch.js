// 批次追溯: find a batch by its code, EPC, manifest number or label id; its timeline from
// generation to disposal, the weights and their differences, the manifest, the verdict; a
// broken chain shows the rule and the event it broke at, with the alert and its evidence.
import { api, ApiError, boot, esc, onLang, params, startLive } from "./common.js";
import {
  apply, fmtNumber, fmtTs, lang, locationName, ruleDescription, ruleName, severityName, stageName, t,
  verdictName,
} from "./i18n.js";

const REG_KEYS = ["waste_name", "waste_category", "category", "form", "hazard", "producer", "label_id", "container_type", "handler", "terminal"];
const MAN_KEYS = ["manifest", "site", "receiver", "transporter", "vehicle", "planned_kg", "transit_limit_h", "batches"];

boot(async (main) => {
  main.innerHTML = `
    <form id="search" class="toolbar" autocomplete="off">
      <input type="search" id="q" name="q" data-i18n-placeholder="batch.search" required maxlength="64">
      <button class="btn" type="submit" data-i18n="batch.find"></button>
      <span id="status" class="empty"></span>
    </form>
    <div id="result"></div>
    <section class="panel section" id="recentPanel"><h2 data-i18n="batch.recent"></h2><div id="recent" class="table-wrap"></div></section>`;
  apply(main);
  const $ = (id) => document.getElementById(id);
  let shown = null; // the timeline document on screen
  let recent = [];

  const recentTable = () => {
    if (!recent.length) return `<p class="empty">${esc(t("none"))}</p>`;
    return `<table><thead><tr><th>${esc(t("batch.batch"))}</th><th>${esc(t("batch.waste"))}</th><th>${esc(t("batch.stage"))}</th><th>${esc(t("batch.verdict"))}</th><th>${esc(t("batch.violations"))}</th><th>${esc(t("batch.atSite"))}</th></tr></thead><tbody>` +
      recent.map((b) => `<tr><td><a href="?batch=${encodeURIComponent(b.batch)}" data-batch="${esc(b.batch)}">${esc(b.batch)}</a></td>` +
        `<td>${esc(b.waste_code)}</td><td>${esc(stageName(b.stage))}</td><td class="verdict-${b.verdict}">${esc(verdictName(b.verdict))}</td>` +
        `<td>${b.rules.map((r) => esc(ruleName(r))).join("、")}</td><td>${esc(b.at_site)}</td></tr>`).join("") + "</tbody></table>";
  };

  // a rule's finding in the page's language (the API reads the rules' sentence: `detail`)
  const said = (item) => (item.detail && item.detail[lang()]) || item.message;
  // HJ 1276-2022's words for a registration's form and hazard codes
  const regValue = (key, value) => {
    if (key === "form") return t("form." + value) === "form." + value ? value : t("form." + value);
    if (key === "hazard") return String(value).split(",").map((h) => (t("hazard." + h) === "hazard." + h ? h : `${t("hazard." + h)} (${h})`)).join("、");
    return value;
  };

  const kv = (pairs) => `<dl class="kv">${pairs.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join("")}</dl>`;

  const render = () => {
    $("recent").innerHTML = recentTable();
    if (!shown) return;
    const doc = shown;
    const broken = new Map(doc.violations.map((v) => [v.event_id, v]));
    const brokenStages = new Set(doc.events.filter((e) => broken.has(e.event_id)).map((e) => e.stage));
    const stages = doc.stages.map((s) =>
      `<div class="st ${s.reached ? "reached" : ""} ${brokenStages.has(s.stage) ? "broken" : ""}">${esc(stageName(s.stage))}</div>`).join("");
    const events = doc.events.map((e) => {
      const v = broken.get(e.event_id);
      const meta = [];
      meta.push(`${esc(e.site_name || e.site)} <small>(${esc(e.site)})</small>`);
      meta.push(`${esc(t("batch.device"))}: ${esc(t("kind." + e.device_kind))} ${esc(e.device)}${e.location ? ` · ${esc(locationName(e.location))}` : ""}`);
      if (e.net_kg !== null && e.net_kg !== undefined) {
        let w = `${esc(t("batch.weight"))}: ${fmtNumber(e.net_kg, 1)} kg`;
        if (e.diff_kg !== undefined) {
          const sign = e.diff_kg > 0 ? "+" : "";
          w += ` · ${esc(t("batch.diff"))} <b class="${Math.abs(e.diff_pct) > 2 ? "verdict-broken" : ""}">${sign}${fmtNumber(e.diff_kg, 1)} kg (${sign}${fmtNumber(e.diff_pct, 1)}%)</b>`;
        }
        meta.push(w);
      }
      if (e.pass) {
        meta.push(`${esc(t("batch.reads", { n: e.pass.reads }))}${e.pass.peak_rssi !== null ? ` · ${esc(t("batch.rssi", { v: e.pass.peak_rssi }))}` : ""}`);
      }
      if (e.stage === "DISPATCHED" && doc.manifest) meta.push(`${esc(t("man.manifest"))}: ${esc(doc.manifest)}`);
      if (e.stage === "GENERATED" && doc.registration.handler) meta.push(`${esc(t("reg.handler"))}: ${esc(doc.registration.handler)}`);
      const rule = v ? `<div class="rule" data-rule="${esc(v.rule)}">⚠ ${esc(ruleName(v.rule))}: ${esc(said(v))}</div>` : "";
      const snap = e.snapshot ? `<a href="${esc(e.snapshot.url)}" target="_blank"><img src="${esc(e.snapshot.url)}" alt="${esc(t("batch.snapshot"))} ${esc(e.snapshot.camera)}" loading="lazy"></a><small>${esc(t("batch.snapshot"))} ${esc(e.snapshot.camera)}</small>` : "";
      return `<li id="ev-${esc(e.event_id)}" class="${v ? "broken" : ""}" data-stage="${esc(e.stage)}"><div class="head"><span class="stage">${esc(stageName(e.stage))}</span>` +
        `<span>${esc(fmtTs(e.ts))} <small>${esc(t("zone.short"))}</small></span></div><div class="meta">${meta.map((m) => `<span>${m}</span>`).join("")}</div>${rule}${snap}</li>`;
    }).join("");
    const violations = doc.violations.length
      ? doc.violations.map((v) => `<div class="violation" data-rule="${esc(v.rule)}"><div class="name">${esc(ruleName(v.rule))}</div>` +
          `<div><small>${esc(ruleDescription(v.rule))}</small></div><div class="detail">${esc(said(v))}</div>` +
          `<div><small>${esc(t("batch.at"))} ${esc(fmtTs(v.at))} · <a href="#ev-${esc(v.event_id)}">${esc(v.event_id)}</a></small></div></div>`).join("")
      : `<p class="empty">${esc(t("none"))}</p>`;
    const alerts = doc.alerts.length
      ? `<table><tbody>${doc.alerts.map((a) => `<tr><td class="sev-${a.severity}">${esc(severityName(a.severity))}</td>` +
          `<td><a href="/screen/alerts?alert=${encodeURIComponent(a.alert_id)}">${esc(ruleName(a.rule))}</a><br><small>${esc(said(a))}</small></td>` +
          `<td>${esc(t("astate." + a.state))}<br><small>${esc(fmtTs(a.opened))}</small></td>` +
          `<td>${a.evidence_url ? `<a href="${esc(a.evidence_url)}" target="_blank"><img src="${esc(a.evidence_url)}" alt="${esc(t("batch.evidence"))}" style="max-width:160px"></a>` : a.evidence ? `<a href="#ev-${esc(a.evidence)}">${esc(t("batch.evidence"))}</a>` : ""}</td></tr>`).join("")}</tbody></table>`
      : `<p class="empty">${esc(t("none"))}</p>`;
    const reg = doc.registration || {};
    const regPairs = [[t("batch.epc"), esc(doc.epc)], [t("batch.waste"), esc(doc.waste_code)]];
    if (!reg.producer) regPairs.push([t("batch.site"), esc(doc.producer_site || "")]);
    for (const k of REG_KEYS) {
      if (reg[k] === undefined || reg[k] === null || reg[k] === "") continue;
      if (k === "category" && reg.category === reg.waste_category) continue; // the same, twice
      regPairs.push([t("reg." + k), esc(regValue(k, reg[k]))]);
    }
    const man = doc.manifest_doc;
    const manPairs = man ? MAN_KEYS.filter((k) => man[k] !== undefined && man[k] !== null)
      .map((k) => [t("man." + k), k === "batches" ? man[k].map((b) => `<a href="?batch=${encodeURIComponent(b)}">${esc(b)}</a>`).join(" ") : esc(man[k])]) : [];
    const where = doc.verdict === "open" && doc.at_site
      ? ` · ${esc(t("batch.atSite"))} ${esc(doc.at_site)} · ${esc(t("batch.openFor", { h: fmtNumber(doc.open_for_h, 1) }))}` : "";
    $("result").innerHTML = `
      <section class="panel" id="summary" data-batch="${esc(doc.batch)}" data-verdict="${esc(doc.verdict)}">
        <h2>${esc(t("batch.batch"))} ${esc(doc.batch)} · <span class="verdict-${doc.verdict}">${esc(verdictName(doc.verdict))}</span>
          · ${esc(t("batch.stage"))}: ${esc(stageName(doc.stage))}${where}</h2>
        <div class="stages">${stages}</div>
      </section>
      <section class="grid cols-2 section" style="grid-template-columns:minmax(0,1.4fr) minmax(0,1fr)">
        <div class="panel"><h2>${esc(t("batch.timeline"))}</h2><ul class="timeline">${events}</ul></div>
        <div class="grid" style="align-content:start">
          <div class="panel"><h2>${esc(t("batch.violations"))}</h2><div id="violations">${violations}</div></div>
          <div class="panel"><h2>${esc(t("batch.alerts"))}</h2>${alerts}</div>
          <div class="panel"><h2>${esc(t("batch.registration"))}</h2>${kv(regPairs)}</div>
          <div class="panel"><h2>${esc(t("batch.manifest"))}</h2>${man ? kv(manPairs) : `<p class="empty">${esc(doc.manifest || t("none"))}</p>`}</div>
        </div>
      </section>`;
  };

  const show = async (batch) => {
    $("status").textContent = t("loading");
    try {
      shown = await api(`/api/batches/${encodeURIComponent(batch)}/timeline`);
      $("status").textContent = "";
      $("recentPanel").hidden = true;
      render();
    } catch (err) {
      $("status").innerHTML = `<span class="error">${esc(err instanceof ApiError && err.status === 404 ? t("batch.notFound", { q: batch }) : t("err.load", { m: err.message }))}</span>`;
    }
  };

  const search = async (q) => {
    $("status").textContent = t("loading");
    try {
      const found = await api(`/api/batches/find?q=${encodeURIComponent(q)}`);
      if (found.matches.length === 1) {
        history.replaceState(null, "", `?batch=${encodeURIComponent(found.matches[0].batch)}`);
        return show(found.matches[0].batch);
      }
      if (!found.matches.length) {
        $("status").innerHTML = `<span class="error">${esc(t("batch.notFound", { q }))}</span>`;
        return;
      }
      $("status").textContent = t("batch.matches");
      shown = null;
      $("result").innerHTML = `<div class="panel"><table><tbody>${found.matches.map((m) =>
        `<tr><td><a href="?batch=${encodeURIComponent(m.batch)}">${esc(m.batch)}</a></td><td>${esc(m.matched)}</td><td>${esc(stageName(m.stage))}</td><td class="verdict-${m.verdict}">${esc(verdictName(m.verdict))}</td></tr>`).join("")}</tbody></table></div>`;
    } catch (err) {
      $("status").innerHTML = `<span class="error">${esc(t("err.load", { m: err.message }))}</span>`;
    }
  };

  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const q = $("q").value.trim();
    if (q) search(q);
  });
  // the newest batches, broken ones first: what an officer opens the page to look at
  const all = await api("/api/batches?limit=10000");
  const newest = all.slice(-40).reverse();
  recent = [...newest.filter((b) => b.verdict === "broken"), ...newest.filter((b) => b.verdict !== "broken")].slice(0, 15);
  render();
  const p = params();
  if (p.get("batch")) { $("q").value = p.get("batch"); await show(p.get("batch")); }
  else if (p.get("q")) { $("q").value = p.get("q"); await search(p.get("q")); }
  onLang(() => { apply(main); render(); });
  // the batch on screen changes as its events and alerts come in
  startLive({
    onEvents: (events) => {
      if (shown && events.some((e) => e.batch === shown.batch || e.subject === shown.batch)) show(shown.batch);
    },
  });
});
