// Languages of the screen: Chinese by default, English on the switch; the names of rules,
// stages, levels … come from /api/screen/labels (the rule declarations), the rest is here.
// Times are China time (UTC+8) whatever the browser's zone, and say so.

const DICT = {
  zh: {
    brand: "危险废物全过程监管",
    loading: "加载中…",
    "page.overview": "总览", "page.batch": "批次追溯", "page.alerts": "告警", "page.air": "空气质量",
    "page.devices": "设备与视频", "page.ledger": "管理台账", "page.wall": "大屏",
    zone: "北京时间 UTC+8", "zone.short": "UTC+8",
    "live.connecting": "正在连接", "live.live": "实时", "live.reconnecting": "正在重连",
    "live.stale": "数据未更新", "live.trouble": "数据源异常",
    "banner.reconnecting": "与服务器的连接已断开，正在重连…",
    "banner.stale": "数据已 {s} 秒未更新（最后更新 {t}）",
    "banner.trouble": "数据源异常：{m}",
    "err.load": "读取失败：{m}",
    none: "无", unknown: "未知", yes: "是", no: "否", total: "合计", more: "更多",
    "kpi.batches": "在管批次", "kpi.storage": "贮存量", "kpi.alerts": "未解除告警",
    "kpi.devices": "设备在线", "kpi.rate": "接入速率", "kpi.deadletters": "死信",
    "kpi.spool": "待补写段", "unit.msgs": "条/秒", "unit.kg": "kg", "unit.perMin": "条/分钟",
    "unit.items": "个", "unit.batches": "批",
    "ov.map": "站点分布（按登记坐标）", "ov.mapNote": "示意图：方位按登记坐标，距离按对数压缩", "ov.stages": "各环节批次", "ov.verdicts": "追溯结论",
    "ov.feed": "实时动态", "ov.sites": "各站点情况", "ov.air": "空气质量（最新）",
    "ov.recentAlerts": "最新告警", "ov.ingest": "接入健康",
    "ov.site": "站点", "ov.moreSites": "另有 {n} 个站点，详见总览页", "ov.role": "类型", "ov.state": "状态", "ov.batches": "批次",
    "ov.storage": "贮存量 / 上限", "ov.alerts": "告警", "ov.devices": "设备在线/离线",
    "ov.ingestUp": "正常", "ov.ingestDegraded": "降级",
    "state.ok": "正常", "state.warning": "预警", "state.alarm": "报警",
    "dev.online": "在线", "dev.offline": "离线", "dev.unknown": "未上报",
    "feed.custody": "环节", "feed.alert": "告警", "feed.deadletter": "死信",
    "feed.empty": "暂无动态",
    "air.station": "站点", "air.hour": "小时", "air.aqi": "AQI", "air.level": "级别",
    "air.primary": "首要污染物", "air.noHour": "尚无完整小时", "air.latest": "最新读数",
    "air.range24": "24 小时", "air.range7d": "7 天", "air.hourlyAqi": "小时 AQI",
    "air.hourlyMeans": "小时均值", "air.raw": "原始读数（{m} 分钟均值）", "air.limit": "限值",
    "air.exceed": "超标", "air.pollutant": "污染物", "air.noData": "该时段无数据",
    "air.exceedances": "超标记录", "air.limitNote": "虚线：各小时所处时段在用的限值（{s}）；红点：超标小时",
    "air.limitNoteMany": "虚线：各小时所处时段在用的限值（{s}，分界处改变）；红点：超标小时",
    "air.noStation": "尚无空气站数据",
    "air.standards": "评价标准：", "air.standard": "评价标准",
    "air.phaseTransition": "过渡期限值", "air.phaseLimits": "限值",
    "air.grade1": "一级", "air.grade2": "二级", "air.gradeOf": "（{g}）",
    "air.indicative": "指示性数据，非官方发布",
    "air.runH": "连续小时", "air.daily": "日报（自然日）", "air.day": "日期",
    "air.o3DailyMax": "O₃ 日最大8小时", "air.overLimits": "超标项目", "air.heavy": "重污染",
    "air.heavyRun": "重污染，连续第 {n} 天", "air.heavyNow": "当前连续重污染 {n} 天",
    "air.heavyCount": "近 31 天重污染日 {n} 天", "air.dayOpen": "（进行中）",
    "air.noDays": "尚无日报",
    "air.marks": "数据审核标记（生效中）", "air.marksNone": "该时段无审核标记",
    "air.markedNote": "灰色区域：标记为无效的时段，其数据不计入均值与 AQI（原始记录保留）",
    "air.marked": "已标记无效", "air.audit": "审核", "air.allPollutants": "全部污染物",
    "air.markHours": "时段", "air.reason": "原因", "air.note": "说明", "air.by": "操作人",
    "air.how": "方式", "air.byAudit": "系统自动审核", "air.reasonKind": "{r}（{k}）",
    "air.origin.auto": "自动", "air.origin.manual": "人工", "air.origin.maintenance": "运维",
    "air.origin.flag": "数据标记",
    "air.maintenance": "运维记录（近 31 天）", "air.maintenanceNone": "近 31 天无运维记录",
    "air.kind": "类型", "air.window": "运维时段", "air.noWindow": "（无时段）",
    "air.kind.calibration": "校准", "air.kind.inspection": "巡检",
    "air.kind.consumable": "耗材更换", "air.kind.repair": "维修",
    "air.reason.flatline": "恒值", "air.reason.spike": "突变值",
    "air.reason.pm_inversion": "PM2.5 大于 PM10（倒挂）", "air.reason.out_of_range": "超出仪器量程",
    "air.reason.fault": "仪器故障", "air.reason.calibration": "校准", "air.reason.maintenance": "维护",
    "air.reason.power": "停电", "air.reason.communication": "通讯故障",
    "air.reason.interference": "局地干扰", "air.reason.other": "其他",
    "air.reason.flag_F": "停运（标记 F）", "air.reason.flag_M": "维护（标记 M）",
    "air.reason.flag_S": "手工输入（标记 S）", "air.reason.flag_D": "故障（标记 D）",
    "air.reason.flag_C": "校准（标记 C）", "air.reason.flag_T": "超测上限（标记 T）",
    "air.reason.flag_B": "通讯异常（标记 B）",
    "batch.search": "批次编码 / 电子标签 EPC / 联单编号 / 标签识别码",
    "batch.find": "查询", "batch.notFound": "未找到：{q}", "batch.matches": "找到多个批次",
    "batch.recentBroken": "最近断链批次", "batch.recent": "最近批次（断链在前）",
    "batch.batch": "批次", "batch.epc": "电子标签", "batch.waste": "废物代码",
    "batch.stage": "当前环节", "batch.verdict": "结论", "batch.site": "产生单位",
    "batch.atSite": "所在站点", "batch.since": "停留自", "batch.openFor": "已停留 {h} 小时",
    "batch.timeline": "全过程时间线", "batch.violations": "断链规则", "batch.alerts": "相关告警",
    "batch.registration": "登记信息", "batch.manifest": "转移联单", "batch.diagnostics": "读取诊断",
    "batch.device": "设备", "batch.weight": "净重", "batch.diff": "与产生时相差",
    "batch.reads": "读取 {n} 次", "batch.rssi": "峰值 RSSI {v} dBm", "batch.snapshot": "门口摄像机截图",
    "batch.evidence": "证据", "batch.at": "发生于",
    "kind.terminal": "现场终端", "kind.rfid": "读写器", "kind.scale": "称重",
    "form.solid": "固态", "form.semi-solid": "半固态", "form.liquid": "液态", "form.gas": "气态", "form.sludge": "污泥",
    "hazard.T": "毒性", "hazard.C": "腐蚀性", "hazard.I": "易燃性", "hazard.R": "反应性", "hazard.In": "感染性",
    "reg.waste_name": "废物名称", "reg.waste_category": "废物类别", "reg.category": "废物类别",
    "reg.form": "形态", "reg.hazard": "危险特性", "reg.producer": "产生单位", "reg.label_id": "标签识别码",
    "reg.container_type": "容器类型", "reg.handler": "经办人", "reg.terminal": "登记终端",
    "man.manifest": "联单编号", "man.receiver": "接收单位", "man.transporter": "运输单位",
    "man.vehicle": "车辆", "man.planned_kg": "计划数量 (kg)", "man.transit_limit_h": "运输时限 (小时)",
    "man.batches": "所列批次", "man.site": "开具单位",
    "dev.site": "站点", "dev.family": "类型", "dev.device": "设备", "dev.where": "位置",
    "dev.state": "状态", "dev.lastSeen": "最后上报", "dev.battery": "电量", "dev.signal": "信号",
    "dev.fw": "固件", "dev.clock": "时钟偏差", "dev.all": "全部", "dev.cameras": "摄像机画面指标",
    "dev.brightness": "亮度", "dev.sharpness": "清晰度", "dev.motion": "运动", "dev.occlusion": "遮挡",
    "dev.noFrames": "近 15 分钟无画面数据", "dev.noSnapshot": "暂无证据截图", "dev.snapshot": "最新证据截图",
    "dev.registry": "设备登记与状态", "dev.watches": "监视读写器",
    "led.site": "单位", "led.month": "月份", "led.kind": "记录类型", "led.allKinds": "全部类型",
    "led.show": "查询", "led.csv": "下载 CSV", "led.xlsx": "下载 Excel", "led.records": "台账记录",
    "led.monthly": "月度汇总", "led.empty": "该月无记录", "led.count": "共 {n} 条",
    "al.state": "状态", "al.site": "站点", "al.severity": "级别", "al.rule": "规则",
    "al.from": "开始", "al.to": "结束", "al.all": "全部", "al.filter": "筛选",
    "al.opened": "发生时间", "al.subject": "对象", "al.message": "说明", "al.count": "次数",
    "al.ack": "确认", "al.resolve": "解除", "al.history": "处理记录", "al.comment": "处理意见",
    "al.by": "处理人", "al.token": "API 令牌（本次会话内保存）", "al.cancel": "取消", "al.submit": "提交",
    "al.evidence": "证据", "al.page": "第 {p} 页，共 {n} 条", "al.prev": "上一页", "al.next": "下一页",
    "al.select": "选择一条告警查看处理记录", "al.new": "新告警", "al.none": "没有符合条件的告警",
    "al.tokenWrong": "令牌错误或缺失", "al.done": "已提交",
    "astate.open": "未处理", "astate.acknowledged": "已确认", "astate.resolved": "已解除",
    "change.opened": "产生", "change.repeated": "重复", "change.acknowledged": "确认", "change.resolved": "解除",
    "change.auto_resolved": "自动解除", "change.escalated": "升级", "change.notified": "已通知",
    "wall.overview": "态势总览", "wall.alerts": "告警处置", "wall.air": "环境空气",
    "wall.next": "{s} 秒后切换", "wall.updated": "更新于 {t}",
  },
  en: {
    brand: "Hazardous waste monitoring",
    loading: "Loading…",
    "page.overview": "Overview", "page.batch": "Batch trace", "page.alerts": "Alerts", "page.air": "Air quality",
    "page.devices": "Devices & video", "page.ledger": "Ledger", "page.wall": "Wall display",
    zone: "China time UTC+8", "zone.short": "UTC+8",
    "live.connecting": "connecting", "live.live": "live", "live.reconnecting": "reconnecting",
    "live.stale": "not updating", "live.trouble": "data source error",
    "banner.reconnecting": "Connection to the server lost, reconnecting…",
    "banner.stale": "No update for {s} s (last update {t})",
    "banner.trouble": "Data source error: {m}",
    "err.load": "Could not read: {m}",
    none: "none", unknown: "unknown", yes: "yes", no: "no", total: "total", more: "more",
    "kpi.batches": "Batches", "kpi.storage": "In storage", "kpi.alerts": "Active alerts",
    "kpi.devices": "Devices online", "kpi.rate": "Ingest rate", "kpi.deadletters": "Dead letters",
    "kpi.spool": "Spooled segments", "unit.msgs": "msg/s", "unit.kg": "kg", "unit.perMin": "/min",
    "unit.items": "", "unit.batches": "",
    "ov.map": "Sites (registry coordinates)", "ov.mapNote": "Schematic: bearings from the registry, distances log-compressed", "ov.stages": "Batches by stage", "ov.verdicts": "Verdicts",
    "ov.feed": "Live events", "ov.sites": "Sites", "ov.air": "Air quality (latest)",
    "ov.recentAlerts": "Latest alerts", "ov.ingest": "Ingest health",
    "ov.site": "Site", "ov.moreSites": "{n} more sites: see the overview", "ov.role": "Role", "ov.state": "State", "ov.batches": "Batches",
    "ov.storage": "Storage / limit", "ov.alerts": "Alerts", "ov.devices": "Devices on/off",
    "ov.ingestUp": "up", "ov.ingestDegraded": "degraded",
    "state.ok": "OK", "state.warning": "Warning", "state.alarm": "Alarm",
    "dev.online": "online", "dev.offline": "offline", "dev.unknown": "not reported",
    "feed.custody": "Custody", "feed.alert": "Alert", "feed.deadletter": "Dead letter",
    "feed.empty": "No events yet",
    "air.station": "Station", "air.hour": "Hour", "air.aqi": "AQI", "air.level": "Level",
    "air.primary": "Primary pollutant", "air.noHour": "no complete hour yet", "air.latest": "Latest reading",
    "air.range24": "24 hours", "air.range7d": "7 days", "air.hourlyAqi": "Hourly AQI",
    "air.hourlyMeans": "Hourly means", "air.raw": "Raw readings ({m}-min means)", "air.limit": "limit",
    "air.exceed": "exceedance", "air.pollutant": "Pollutant", "air.noData": "No data in this period",
    "air.exceedances": "Exceedances", "air.limitNote": "Dashed: the limit in force at each hour's time ({s}); red dots: hours over it",
    "air.limitNoteMany": "Dashed: the limit in force at each hour's time ({s}, changing where an edition takes over); red dots: hours over it",
    "air.noStation": "No air station has reported yet",
    "air.standards": "Standards: ", "air.standard": "Standard",
    "air.phaseTransition": "transition limits", "air.phaseLimits": "limits",
    "air.grade1": "grade I", "air.grade2": "grade II", "air.gradeOf": " ({g})",
    "air.indicative": "indicative data, not officially published",
    "air.runH": "hours in a row", "air.daily": "Daily report (natural day)", "air.day": "Day",
    "air.o3DailyMax": "O₃ daily max 8-h", "air.overLimits": "Over limits", "air.heavy": "Heavy pollution",
    "air.heavyRun": "heavy, day {n} in a row", "air.heavyNow": "heavy pollution {n} days in a row now",
    "air.heavyCount": "heavy-pollution days in the last 31 days: {n}", "air.dayOpen": "(in progress)",
    "air.noDays": "No daily report yet",
    "air.marks": "Audit marks in force", "air.marksNone": "No audit mark in this period",
    "air.markedNote": "Grey: periods marked invalid; their data count in no mean and no AQI (the raw records are kept)",
    "air.marked": "marked invalid", "air.audit": "Audit", "air.allPollutants": "all pollutants",
    "air.markHours": "Hours", "air.reason": "Reason", "air.note": "Note", "air.by": "By",
    "air.how": "How", "air.byAudit": "automatic audit", "air.reasonKind": "{r} ({k})",
    "air.origin.auto": "automatic", "air.origin.manual": "by hand", "air.origin.maintenance": "maintenance",
    "air.origin.flag": "data flag",
    "air.maintenance": "Maintenance records (last 31 days)", "air.maintenanceNone": "No maintenance record in the last 31 days",
    "air.kind": "Kind", "air.window": "Window", "air.noWindow": "(no window)",
    "air.kind.calibration": "calibration", "air.kind.inspection": "inspection",
    "air.kind.consumable": "consumable change", "air.kind.repair": "repair",
    "air.reason.flatline": "flatline", "air.reason.spike": "spike",
    "air.reason.pm_inversion": "PM2.5 over PM10", "air.reason.out_of_range": "outside the instrument's range",
    "air.reason.fault": "instrument fault", "air.reason.calibration": "calibration", "air.reason.maintenance": "maintenance",
    "air.reason.power": "power cut", "air.reason.communication": "communication fault",
    "air.reason.interference": "local interference", "air.reason.other": "other",
    "air.reason.flag_F": "stopped (flag F)", "air.reason.flag_M": "maintenance (flag M)",
    "air.reason.flag_S": "manual input (flag S)", "air.reason.flag_D": "fault (flag D)",
    "air.reason.flag_C": "calibration (flag C)", "air.reason.flag_T": "over range (flag T)",
    "air.reason.flag_B": "communication abnormal (flag B)",
    "batch.search": "Batch code / EPC / manifest no. / label id",
    "batch.find": "Find", "batch.notFound": "Not found: {q}", "batch.matches": "Several batches match",
    "batch.recentBroken": "Recent broken batches", "batch.recent": "Recent batches (broken first)",
    "batch.batch": "Batch", "batch.epc": "EPC", "batch.waste": "Waste code",
    "batch.stage": "Stage", "batch.verdict": "Verdict", "batch.site": "Producer",
    "batch.atSite": "At site", "batch.since": "Since", "batch.openFor": "for {h} h",
    "batch.timeline": "Timeline", "batch.violations": "Rules broken", "batch.alerts": "Alerts",
    "batch.registration": "Registration", "batch.manifest": "Transfer manifest", "batch.diagnostics": "Read diagnostics",
    "batch.device": "Device", "batch.weight": "Net weight", "batch.diff": "vs generation",
    "batch.reads": "{n} reads", "batch.rssi": "peak RSSI {v} dBm", "batch.snapshot": "Door camera snapshot",
    "batch.evidence": "Evidence", "batch.at": "at",
    "kind.terminal": "terminal", "kind.rfid": "reader", "kind.scale": "scale",
    "form.solid": "solid", "form.semi-solid": "semi-solid", "form.liquid": "liquid", "form.gas": "gas", "form.sludge": "sludge",
    "hazard.T": "toxic", "hazard.C": "corrosive", "hazard.I": "ignitable", "hazard.R": "reactive", "hazard.In": "infectious",
    "reg.waste_name": "Waste name", "reg.waste_category": "Category", "reg.category": "Category",
    "reg.form": "Form", "reg.hazard": "Hazard", "reg.producer": "Producer", "reg.label_id": "Label id",
    "reg.container_type": "Container", "reg.handler": "Handler", "reg.terminal": "Terminal",
    "man.manifest": "Manifest no.", "man.receiver": "Receiver", "man.transporter": "Transporter",
    "man.vehicle": "Vehicle", "man.planned_kg": "Planned (kg)", "man.transit_limit_h": "Transit limit (h)",
    "man.batches": "Batches", "man.site": "Issued by",
    "dev.site": "Site", "dev.family": "Family", "dev.device": "Device", "dev.where": "Location",
    "dev.state": "State", "dev.lastSeen": "Last seen", "dev.battery": "Battery", "dev.signal": "Signal",
    "dev.fw": "Firmware", "dev.clock": "Clock offset", "dev.all": "All", "dev.cameras": "Camera frame metrics",
    "dev.brightness": "Brightness", "dev.sharpness": "Sharpness", "dev.motion": "Motion", "dev.occlusion": "Occlusion",
    "dev.noFrames": "No frames in the last 15 minutes", "dev.noSnapshot": "No evidence snapshot yet", "dev.snapshot": "Latest evidence snapshot",
    "dev.registry": "Registry and status", "dev.watches": "Watches readers",
    "led.site": "Site", "led.month": "Month", "led.kind": "Record type", "led.allKinds": "All types",
    "led.show": "Show", "led.csv": "Download CSV", "led.xlsx": "Download Excel", "led.records": "Ledger records",
    "led.monthly": "Monthly summary", "led.empty": "No records this month", "led.count": "{n} records",
    "al.state": "State", "al.site": "Site", "al.severity": "Severity", "al.rule": "Rule",
    "al.from": "From", "al.to": "To", "al.all": "All", "al.filter": "Filter",
    "al.opened": "Opened", "al.subject": "Subject", "al.message": "Message", "al.count": "Count",
    "al.ack": "Acknowledge", "al.resolve": "Resolve", "al.history": "History", "al.comment": "Comment",
    "al.by": "By", "al.token": "API token (kept for this session)", "al.cancel": "Cancel", "al.submit": "Submit",
    "al.evidence": "Evidence", "al.page": "Page {p}, {n} alerts", "al.prev": "Previous", "al.next": "Next",
    "al.select": "Select an alert to see its history", "al.new": "New alert", "al.none": "No alert matches",
    "al.tokenWrong": "Wrong or missing token", "al.done": "Done",
    "astate.open": "open", "astate.acknowledged": "acknowledged", "astate.resolved": "resolved",
    "change.opened": "opened", "change.repeated": "repeated", "change.acknowledged": "acknowledged", "change.resolved": "resolved",
    "change.auto_resolved": "auto-resolved", "change.escalated": "escalated", "change.notified": "notified",
    "wall.overview": "Overview", "wall.alerts": "Alerts", "wall.air": "Air",
    "wall.next": "next in {s} s", "wall.updated": "updated {t}",
  },
};

const KEY = "hazwatch.lang";
let labels = null;

export function lang() {
  const chosen = new URLSearchParams(location.search).get("lang") || sessionStorage.getItem(KEY) || localStorage.getItem(KEY);
  return chosen === "en" || chosen === "zh" ? chosen : "zh";
}

export function setLang(value) {
  localStorage.setItem(KEY, value);
  sessionStorage.setItem(KEY, value);
  const url = new URL(location.href);
  if (url.searchParams.has("lang")) {
    url.searchParams.set("lang", value);
    history.replaceState(null, "", url);
  }
  apply();
  document.dispatchEvent(new CustomEvent("langchange", { detail: value }));
}

export function t(key, vars) {
  const text = DICT[lang()][key] ?? DICT.zh[key] ?? key;
  if (!vars) return text;
  return text.replace(/\{(\w+)\}/g, (_, name) => (vars[name] ?? ""));
}

export function apply(root = document) {
  document.documentElement.lang = lang() === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  const page = document.body.dataset.page;
  if (page) document.title = `${t("page." + page)} · hazwatch`;
}

export async function loadLabels() {
  if (labels) return labels;
  const answer = await fetch("/api/screen/labels");
  if (!answer.ok) throw new Error(`labels: HTTP ${answer.status}`);
  labels = await answer.json();
  return labels;
}

function pick(table, key) {
  const entry = labels && labels[table] && labels[table][key];
  if (!entry) return key ?? "";
  return entry[lang()] ?? entry.zh ?? key;
}

export const ruleName = (id) => {
  const rule = labels && labels.rules[id];
  return rule ? rule.name[lang()] : id;
};
export const ruleDescription = (id) => {
  const rule = labels && labels.rules[id];
  return rule ? rule.description[lang()] : "";
};
export const stageName = (s) => pick("stages", s);
export const verdictName = (v) => pick("verdicts", v);
export const severityName = (s) => pick("severities", s);
export const familyName = (f) => pick("families", f);
export const roleName = (r) => pick("roles", r);
export const locationName = (l) => pick("locations", l);
export const ledgerKindName = (k) => pick("ledger_kinds", k);
// an alert's change as the notifications word it (alerts/messages.py), else this page's word
export const changeName = (c) => (labels && labels.changes && labels.changes[c] ? pick("changes", c) : t("change." + c));
export function pollutantName(p) {
  const entry = labels && labels.pollutants[p];
  return entry ? entry.name[lang()] : p;
}
export function pollutantUnit(p) {
  const entry = labels && labels.pollutants[p];
  return entry ? entry.unit : "";
}
export function levelOf(aqi) {
  if (aqi === null || aqi === undefined || !labels) return null;
  return labels.aqi_levels.find((l) => aqi <= l.high) || labels.aqi_levels[labels.aqi_levels.length - 1];
}
export const levels = () => (labels ? labels.aqi_levels : []);
export const limits = () => (labels ? labels.limits : {});
export const labelData = () => labels;

// China time, whatever zone the browser is in: UTC+8 has no daylight saving.
const CHINA_MS = 8 * 3600 * 1000;
const pad = (n, w = 2) => String(n).padStart(w, "0");
export function chinaParts(ms) {
  const d = new Date(ms + CHINA_MS);
  return {
    y: d.getUTCFullYear(), mo: d.getUTCMonth() + 1, d: d.getUTCDate(),
    h: d.getUTCHours(), mi: d.getUTCMinutes(), s: d.getUTCSeconds(),
  };
}
export function fmtTime(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  const p = chinaParts(ms);
  return `${p.y}-${pad(p.mo)}-${pad(p.d)} ${pad(p.h)}:${pad(p.mi)}:${pad(p.s)}`;
}
export function fmtClock(ms) {
  const p = chinaParts(ms);
  return `${pad(p.h)}:${pad(p.mi)}:${pad(p.s)}`;
}
export function fmtHour(ms) {
  const p = chinaParts(ms);
  return `${pad(p.mo)}-${pad(p.d)} ${pad(p.h)}:00`;
}
export const parseTs = (text) => (text ? Date.parse(text) : null);
export function fmtTs(text) {
  return fmtTime(parseTs(text));
}
export function fmtNumber(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return Number(value).toLocaleString(lang() === "zh" ? "zh-CN" : "en-US", {
    minimumFractionDigits: digits, maximumFractionDigits: digits,
  });
}
