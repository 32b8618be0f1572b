// 告警: the alert list (state, site, severity, rule, time; newest first, paged), one alert's
// history and evidence, acknowledging and resolving with a comment (the API token is asked once
// and kept for the session), new alerts appearing live.
import { api, ApiError, boot, esc, fresh, onLang, params, startLive } from "./common.js";
import { apply, changeName, fmtTs, labelData, lang, ruleDescription, ruleName, severityName, t } from "./i18n.js";

const PAGE = 50;
const TOKEN = "hazwatch.token";
const BY = "hazwatch.by";

// an <input type=datetime-local> value is China time: RFC 3339 with +08:00
const chinaInstant = (value) => (value ? `${value.length === 16 ? value + ":00" : value}+08:00` : "");

boot(async (main) => {
  const p = params();
  main.innerHTML = `
    <form id="filters" class="toolbar">
      <label><span data-i18n="al.state"></span> <select name="state"></select></label>
      <label><span data-i18n="al.severity"></span> <select name="severity"></select></label>
      <label><span data-i18n="al.site"></span> <select name="site"></select></label>
      <label><span data-i18n="al.rule"></span> <select name="rule"></select></label>
      <label><span data-i18n="al.from"></span> <input type="datetime-local" name="since"></label>
      <label><span data-i18n="al.to"></span> <input type="datetime-local" name="until"></label>
      <button class="btn" type="submit" data-i18n="al.filter"></button>
      <span id="status" class="empty"></span>
    </form>
    <section class="grid cols-2" style="grid-template-columns:minmax(0,1.6fr) minmax(0,1fr)">
      <div class="panel"><div id="list" class="table-wrap"></div>
        <div class="pager"><button type="button" class="btn ghost" id="prev" data-i18n="al.prev"></button>
        <span id="pageInfo"></span><button type="button" class="btn ghost" id="next" data-i18n="al.next"></button></div></div>
      <div class="panel" id="detail"><p class="empty" data-i18n="al.select"></p></div>
    </section>`;
  apply(main);
  const $ = (id) => document.getElementById(id);
  const form = $("filters");
  const registry = await api("/api/registry");
  let page = { total: 0, alerts: [], offset: 0 };
  let offset = 0;
  let selected = p.get("alert");
  let detail = null;
  const fresh_ids = new Set();

  const fillFilters = () => {
    const keep = Object.fromEntries(new FormData(form));
    const options = (pairs, value) => pairs.map(([v, name]) => `<option value="${esc(v)}" ${v === value ? "selected" : ""}>${esc(name)}</option>`).join("");
    const state = keep.state ?? p.get("state") ?? "open";
    form.state.innerHTML = options([["", t("al.all")], ...["open", "acknowledged", "resolved"].map((s) => [s, t("astate." + s)])], state);
    form.severity.innerHTML = options([["", t("al.all")], ...["critical", "major", "warning", "info"].map((s) => [s, severityName(s)])], keep.severity ?? p.get("severity") ?? "");
    form.site.innerHTML = options([["", t("al.all")], ...(registry.site || []).map((s) => [s.id, `${s.name || s.id} (${s.id})`])], keep.site ?? p.get("site") ?? "");
    form.rule.innerHTML = options([["", t("al.all")], ...Object.keys(labelData().rules).map((r) => [r, ruleName(r)])], keep.rule ?? p.get("rule") ?? "");
  };

  const query = () => {
    const q = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    for (const name of ["state", "severity", "site", "rule"]) if (form[name].value) q.set(name, form[name].value);
    if (form.since.value) q.set("since", chinaInstant(form.since.value));
    if (form.until.value) q.set("until", chinaInstant(form.until.value));
    return q;
  };

  const renderList = () => {
    const head = ["al.opened", "al.severity", "al.rule", "al.site", "al.subject", "al.state", "al.count"];
    $("list").innerHTML = page.alerts.length
      ? `<table><thead><tr>${head.map((k) => `<th>${esc(t(k))}</th>`).join("")}</tr></thead><tbody>` +
        page.alerts.map((a) => `<tr data-alert="${esc(a.alert_id)}" data-state="${a.state}" class="${a.alert_id === selected ? "selected" : ""} ${fresh_ids.has(a.alert_id) ? "new" : ""}" style="cursor:pointer">` +
          `<td>${esc(fmtTs(a.opened).slice(0, 19))}</td><td class="sev-${a.severity}">${esc(severityName(a.severity))}</td>` +
          `<td title="${esc(ruleDescription(a.rule))}">${esc(ruleName(a.rule))}</td><td>${esc(a.site)}</td><td>${esc(a.subject)}</td>` +
          `<td class="astate">${esc(t("astate." + a.state))}</td><td class="num">${a.count}</td></tr>`).join("") + "</tbody></table>"
      : `<p class="empty">${esc(t("al.none"))}</p>`;
    const pages = Math.max(1, Math.ceil(page.total / PAGE));
    $("pageInfo").textContent = t("al.page", { p: Math.floor(offset / PAGE) + 1 + " / " + pages, n: page.total });
    $("prev").disabled = offset === 0;
    $("next").disabled = offset + PAGE >= page.total;
  };

  const renderDetail = () => {
    if (!detail) return;
    const a = detail;
    const link = a.evidence_link;
    let evidence = "";
    if (link && link.kind === "snapshot") evidence = `<a href="${esc(link.url)}" target="_blank"><img src="${esc(link.url)}" alt="${esc(t("al.evidence"))}"></a>`;
    else if (link && link.kind === "batch_trace") evidence = `<a href="/screen/batch?batch=${encodeURIComponent(a.subject)}">${esc(t("page.batch"))}: ${esc(a.subject)}</a>`;
    else if (link && link.kind === "air_hourly") {
      const station = decodeURIComponent((link.url.match(/^\/api\/air\/([^/]+)\//) || ["", ""])[1]);
      evidence = `<a href="/screen/air?station=${encodeURIComponent(station)}">${esc(t("page.air"))}: ${esc(a.subject)}</a>`;
    } else if (link && (link.kind === "device" || link.kind === "device_clock")) {
      evidence = `<a href="/screen/devices">${esc(t("page.devices"))}: ${esc(a.subject)}</a>`;
    }
    const history = a.history.map((h) => `<li><b>${esc(changeName(h.change))}</b> · ${esc(fmtTs(h.at))} · ${esc(h.actor === a.rule ? ruleName(h.actor) : h.actor)}${h.comment ? `<br><span>${esc(h.comment)}</span>` : ""}</li>`).join("");
    $("detail").innerHTML = `<h2 class="sev-${a.severity}">${esc(severityName(a.severity))} · ${esc(ruleName(a.rule))}</h2>
      <p><small>${esc(ruleDescription(a.rule))}</small></p>
      <dl class="kv"><dt>${esc(t("al.subject"))}</dt><dd>${esc(a.subject)}</dd><dt>${esc(t("al.site"))}</dt><dd>${esc(a.site)}</dd>
      <dt>${esc(t("al.state"))}</dt><dd data-state="${a.state}" id="detailState">${esc(t("astate." + a.state))}</dd>
      <dt>${esc(t("al.opened"))}</dt><dd>${esc(fmtTs(a.opened))} ${esc(t("zone.short"))}</dd>
      <dt>${esc(t("al.count"))}</dt><dd>${a.count}</dd><dt>${esc(t("al.message"))}</dt><dd id="detailMessage">${esc((a.said && a.said[lang()]) || a.message)}</dd>
      <dt>${esc(t("al.evidence"))}</dt><dd class="evidence">${evidence || "—"}</dd></dl>
      <div class="toolbar" style="margin-top:12px">
        <button type="button" class="btn" id="ack" ${a.state !== "open" ? "disabled" : ""} data-i18n="al.ack">${esc(t("al.ack"))}</button>
        <button type="button" class="btn ghost" id="resolve" ${a.state === "resolved" ? "disabled" : ""} data-i18n="al.resolve">${esc(t("al.resolve"))}</button></div>
      <h3>${esc(t("al.history"))}</h3><ul class="history">${history}</ul>`;
    $("ack").addEventListener("click", () => decide("ack"));
    $("resolve").addEventListener("click", () => decide("resolve"));
  };

  const loadList = async () => {
    try {
      page = await api(`/api/alerts?${query()}`);
      fresh();
      $("status").textContent = "";
    } catch (err) {
      $("status").innerHTML = `<span class="error">${esc(t("err.load", { m: err.message }))}</span>`;
    }
    renderList();
  };

  const loadDetail = async (id) => {
    selected = id;
    try {
      detail = await api(`/api/alerts/${encodeURIComponent(id)}`);
      if (detail.evidence_link && detail.evidence_link.kind === "batch_trace") {
        // a custody finding: its sentence in both languages, as the batch page has it
        try {
          const trace = await api(`/api/batches/${encodeURIComponent(detail.subject)}/timeline`);
          const same = trace.alerts.find((x) => x.alert_id === detail.alert_id);
          if (same) detail.said = same.detail;
        } catch { /* the rules' own words, then */ }
      }
      renderDetail();
    } catch (err) {
      $("detail").innerHTML = `<p class="error">${esc(t("err.load", { m: err.message }))}</p>`;
    }
    renderList();
  };

  // the officer's name and comment, and the token when none is kept yet (or it was refused)
  const ask = (how, needToken) => new Promise((resolve) => {
    const back = document.createElement("div");
    back.className = "dialog-backdrop";
    back.innerHTML = `<form class="dialog" id="decision"><h2>${esc(t(how === "ack" ? "al.ack" : "al.resolve"))} · ${esc(ruleName(detail.rule))}</h2>
      <label>${esc(t("al.by"))}<input name="by" required maxlength="64" value="${esc(sessionStorage.getItem(BY) || "")}"></label>
      <label>${esc(t("al.comment"))}<textarea name="comment" rows="3" maxlength="1000"></textarea></label>
      ${needToken ? `<label>${esc(t("al.token"))}<input name="token" type="password" autocomplete="off"></label>` : ""}
      <p class="error" id="why"></p>
      <div class="actions"><button type="button" class="btn ghost" id="cancel">${esc(t("al.cancel"))}</button><button class="btn" type="submit">${esc(t("al.submit"))}</button></div></form>`;
    document.body.append(back);
    const dialog = back.querySelector("form");
    dialog.by.focus();
    back.querySelector("#cancel").addEventListener("click", () => { back.remove(); resolve(null); });
    dialog.addEventListener("submit", (e) => {
      e.preventDefault();
      const answer = { by: dialog.by.value.trim(), comment: dialog.comment.value.trim() || null, token: dialog.token ? dialog.token.value : null };
      back.remove();
      resolve(answer);
    });
  });

  // the token is asked the first time in a session (left empty where the API has none), and
  // again only when the API refuses the one kept
  const decide = async (how, needToken = sessionStorage.getItem(TOKEN) === null) => {
    const answer = await ask(how, needToken);
    if (!answer) return;
    sessionStorage.setItem(BY, answer.by);
    if (answer.token !== null) sessionStorage.setItem(TOKEN, answer.token);
    const token = sessionStorage.getItem(TOKEN);
    try {
      detail = await api(`/api/alerts/${encodeURIComponent(detail.alert_id)}/${how}`, {
        method: "POST",
        body: { by: answer.by, comment: answer.comment },
        headers: token ? { Authorization: `Bearer ${token}` } : {},
      });
      $("status").textContent = t("al.done");
      renderDetail();
      await loadList();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        sessionStorage.removeItem(TOKEN);
        $("status").innerHTML = `<span class="error">${esc(t("al.tokenWrong"))}</span>`;
        return decide(how, true);
      }
      $("status").innerHTML = `<span class="error">${esc(t("err.load", { m: err.message }))}</span>`;
    }
  };

  fillFilters();
  form.addEventListener("submit", (e) => { e.preventDefault(); offset = 0; loadList(); });
  $("prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); loadList(); });
  $("next").addEventListener("click", () => { offset += PAGE; loadList(); });
  $("list").addEventListener("click", (e) => {
    const row = e.target.closest("tr[data-alert]");
    if (row) loadDetail(row.dataset.alert);
  });
  await loadList();
  if (selected) await loadDetail(selected);
  onLang(() => { apply(main); fillFilters(); renderList(); renderDetail(); });
  startLive({
    onEvents: (events) => {
      const alerts = events.filter((e) => e.kind === "alert");
      if (!alerts.length) return;
      for (const e of alerts) {
        fresh_ids.add(e.alert_id);
        setTimeout(() => fresh_ids.delete(e.alert_id), 4000); // flashed once, then plain
      }
      loadList();
      if (detail && alerts.some((e) => e.alert_id === detail.alert_id)) loadDetail(detail.alert_id);
    },
    onLive: () => loadList(),
  });
});
