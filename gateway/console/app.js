/* 枫桥操作台：登录、路由、接口调用与一屏统览。所有资源由本节点提供，不访问外网。 */
"use strict";

const FQ = (window.FQ = {
  token: sessionStorage.getItem("fq-token") || "",
  me: null,
  views: {},
  charts: [],
});

FQ.STATUS = {
  CASE_STATUS_RECEIVED: "受理", CASE_STATUS_TRIAGED: "分类研判", CASE_STATUS_ASSIGNED: "交办",
  CASE_STATUS_ACKNOWLEDGED: "签收", CASE_STATUS_IN_PROGRESS: "处置", CASE_STATUS_FEEDBACK: "反馈",
  CASE_STATUS_REVIEWED: "审核", CASE_STATUS_CLOSED: "办结", CASE_STATUS_FOLLOWED_UP: "回访",
  CASE_STATUS_ARCHIVED: "归档", CASE_STATUS_ESCALATING: "上报中", CASE_STATUS_RETURNED: "退单",
  CASE_STATUS_REOPENED: "发回重办",
};
FQ.CLASSES = { RESPONSE_CLASS_ROUTINE: "即办", RESPONSE_CLASS_URGENT: "应急", RESPONSE_CLASS_TASK_FORCE: "攻坚" };
FQ.STATUS_CODE = Object.fromEntries(Object.keys(FQ.STATUS).map((s, i) => [s, i + 1]));
FQ.vocabulary = { categories: [], channels: [], centers: [] };
FQ.names = {};
/* 菜单：每项只在本角色有相应权限时出现（不出现点进去被拒绝的菜单）。 */
FQ.MENU = [
  ["overview", "一屏统览", ["figures.read"]], ["todo", "待办", ["cases.handle", "cases.direct"]],
  ["intake", "受理", ["cases.submit"]], ["cases", "案件", ["cases.read"]],
  ["directives", "工作指令", ["directives"]], ["alerts", "预警", ["figures.read", "joint.read"]],
  ["joint", "三联联调", ["joint.read"]], ["projects", "四必评", ["projects.read"]],
  ["reports", "月报", ["figures.read"]], ["accounts", "账号", ["users.manage"]],
];

FQ.esc = (value) => String(value ?? "").replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
FQ.pct = (rate) => (rate && Number(rate.denominator) > 0 ? (100 * rate.value).toFixed(1) + "%" : "—");
FQ.time = (iso) => {
  if (!iso) return "—";
  const d = new Date(new Date(iso).getTime() + 8 * 3600 * 1000); // 北京时间
  return d.toISOString().slice(0, 16).replace("T", " ");
};
FQ.chinaDay = (offsetDays = 0) =>
  new Date(Date.now() + 8 * 3600 * 1000 - offsetDays * 86400 * 1000).toISOString().slice(0, 10);
FQ.can = (permission) => !!FQ.me && FQ.me.permissions.includes(permission);
FQ.scope = () => (FQ.me.node_code.startsWith(FQ.me.here) ? FQ.me.node_code : FQ.me.here);

FQ.name = (code) => (code ? FQ.names[code] || code : "—");
FQ.post = (path, body) => FQ.api(path, { method: "POST", headers: { "Content-Type": "application/json" },
  body: JSON.stringify(body || {}) });
FQ.allowed = (name) => FQ.MENU.some(([n, , perms]) => n === name && perms.some(FQ.can));

FQ.api = async (path, options = {}) => {
  const headers = { ...(options.headers || {}), Authorization: "Bearer " + FQ.token };
  const reply = await fetch(path, { ...options, headers });
  if (reply.status === 401) {
    FQ.logout();
    throw new Error("登录已失效，请重新登录");
  }
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) {
    const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg || d).join("；") : body.detail;
    throw new Error(detail || "请求失败（" + reply.status + "）");
  }
  return body;
};

FQ.chart = (element, option) => {
  const chart = echarts.init(element, null, { renderer: "canvas" });
  chart.setOption({ animation: false, textStyle: { fontFamily: getComputedStyle(document.body).fontFamily },
    ...option });
  FQ.charts.push(chart);
  return chart;
};

FQ.logout = () => {
  FQ.token = "";
  FQ.me = null;
  FQ.departmentList = null;
  sessionStorage.removeItem("fq-token");
  FQ.show();
};

FQ.show = async () => {
  const loggedIn = !!FQ.token;
  document.getElementById("login").hidden = loggedIn;
  document.getElementById("main").hidden = !loggedIn;
  document.getElementById("nav").hidden = !loggedIn;
  document.getElementById("who").hidden = !loggedIn;
  if (!loggedIn) return;
  if (!FQ.me) {
    try {
      FQ.me = await FQ.api("/api/v1/auth/me");
      await FQ.loadNames();
    } catch (err) {
      document.getElementById("main").innerHTML = `<p class="error">${FQ.esc(err.message)}</p>`;
      return;
    }
    document.getElementById("node-name").textContent = FQ.me.here_name;
    document.getElementById("who-name").textContent = `${FQ.me.username}（${FQ.me.role_label}${FQ.me.department ? " · " + FQ.me.department : ""}）`;
    document.title = "枫桥 · " + FQ.me.here_name;
    document.getElementById("nav").innerHTML = FQ.MENU.filter(([, , perms]) => perms.some(FQ.can))
      .map(([view, label]) => `<a href="#/${view}" data-view="${view}">${label}</a>`).join("");
  }
  FQ.route();
};

FQ.loadNames = async () => {
  const [words, nodes] = await Promise.all([
    FQ.api("/api/v1/vocabulary"),
    FQ.can("figures.read") ? FQ.api("/api/v1/nodes?limit=500") : Promise.resolve({ items: [] }),
  ]);
  FQ.vocabulary = words;
  FQ.nodes = nodes.items;
  [...words.centers, ...nodes.items].forEach((n) => (FQ.names[n.code] = n.name));
};

/* 登录后的首页：值班员与部门看待办，网格员看受理，管理员与省级看一屏统览。 */
FQ.home = () => (FQ.can("users.manage") || !FQ.can("cases.read") ? "overview"
  : FQ.can("cases.handle") ? "todo" : FQ.can("cases.submit") ? "intake" : "cases");

FQ.route = async () => {
  let [, name = "", arg = ""] = location.hash.split("?")[0].split("/");
  if (name !== "case" && name !== "joint-case" && name !== "project" && !FQ.allowed(name)) name = FQ.home();
  const view = FQ.views[name];
  FQ.charts.forEach((c) => c.dispose());
  FQ.charts = [];
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("on", a.dataset.view === name));
  const main = document.getElementById("main");
  delete main.dataset.ready;
  main.innerHTML = '<p class="loading">正在加载…</p>';
  try {
    await view(main, decodeURIComponent(arg));
  } catch (err) {
    main.innerHTML = `<p class="error">${FQ.esc(err.message)}</p>`;
  }
  main.dataset.ready = name;
};

/* ---------- 一屏统览 ---------- */

FQ.views.overview = async (main) => {
  const code = FQ.scope();
  const month = FQ.chinaDay().slice(0, 7);
  const quarter = month.slice(0, 4) + "Q" + Math.ceil(Number(month.slice(5, 7)) / 3);
  const [stats, nodes, ranking] = await Promise.all([
    FQ.api(`/api/v1/nodes/${code}/stats?period=${month}&children=true`),
    FQ.api("/api/v1/nodes?limit=500"),
    FQ.api(`/api/v1/rankings/departments?period=${quarter}&code=${code}`),
  ]);
  main.innerHTML = `
    <h2>${FQ.esc(stats.name)} · ${month} 一屏统览</h2>
    <div class="kpis">${FQ.kpis(stats)}</div>
    <div class="grid">
      <section class="card wide"><h3>辖区态势（颜色为受理量，红框为有超期案件，连线为上行链路）</h3>
        <div class="chart tall" id="chart-map"></div></section>
      <section class="card"><h3>小事不出村 · 大事不出镇 · 矛盾不上交</h3><div class="chart" id="chart-levels"></div></section>
      <section class="card"><h3>近 14 天受理与办结</h3><div class="chart" id="chart-trend"></div></section>
      <section class="card"><h3>本月案件类别</h3><div class="chart" id="chart-categories"></div></section>
      <section class="card span2"><h3>部门红黑榜（${quarter}）</h3>${FQ.rankingTable(ranking.items, ranking.min_sample)}</section>
      <section class="card"><h3>超期案件与督办</h3><div id="overdue">正在加载…</div></section>
      <section class="card"><h3>各中心链路状态</h3>${FQ.linkTable(nodes.items, stats.stale_nodes || [])}</section>
    </div>`;
  FQ.levelsChart(document.getElementById("chart-levels"), stats);
  await FQ.mapChart(document.getElementById("chart-map"), stats, nodes.items);
  await Promise.all([
    FQ.trendChart(document.getElementById("chart-trend"), code),
    FQ.categoryChart(document.getElementById("chart-categories"), code, month),
    FQ.overdueList(document.getElementById("overdue")),
  ]);
};

FQ.kpis = (s) => {
  const items = [
    ["受理", s.received], ["办结", s.closed], ["办结率", FQ.pct(s.closure_rate)],
    ["按期办结率", FQ.pct(s.on_time_rate)], ["调解成功率", FQ.pct(s.mediation_success_rate)],
    ["回访率", FQ.pct(s.follow_up_rate)], ["满意度", s.satisfaction?.count > 0 ? s.satisfaction.value.toFixed(2) : "—"],
    ["超期", s.overdue], ["督办", s.supervised],
  ];
  return items.map(([k, v]) => `<div class="kpi"><span>${k}</span><b>${FQ.esc(v)}</b></div>`).join("");
};

FQ.levelsChart = (element, s) => {
  const share = (rate) => Math.round(1000 * (rate?.value || 0)) / 10;
  FQ.chart(element, {
    tooltip: { formatter: "{b}：{c}%" },
    grid: { left: 110, right: 40, top: 10, bottom: 30 },
    xAxis: { type: "value", max: 100, axisLabel: { formatter: "{value}%" } },
    yAxis: { type: "category", data: ["村级化解", "镇级及以下化解", "上交县级"] },
    series: [{ type: "bar", label: { show: true, position: "right", formatter: "{c}%" },
      data: [share(s.resolved_at_village), share(s.resolved_at_or_below_town), share(s.escalated_to_county)],
      itemStyle: { color: (p) => ["#2e7d32", "#1565c0", "#c62828"][p.dataIndex] } }],
  });
};

FQ.mapChart = async (element, stats, nodes) => {
  // 示意图：县在中心，乡镇环绕，村环绕其乡镇；不依赖外部地图数据。
  const byCode = Object.fromEntries(nodes.map((n) => [n.code, n]));
  const figures = { [stats.code]: stats };
  const towns = stats.children || [];
  towns.forEach((t) => (figures[t.code] = t));
  const withVillages = await Promise.all(towns.filter((t) => t.tier === "TIER_TOWN").map((t) =>
    FQ.api(`/api/v1/nodes/${t.code}/stats?period=${stats.period}&children=true`).catch(() => ({ children: [] }))));
  withVillages.forEach((t) => (t.children || []).forEach((v) => (figures[v.code] = v)));
  const codes = Object.keys(figures);
  const positions = {};
  positions[stats.code] = [0, 0];
  const top = codes.filter((c) => figures[c] !== stats && byCode[c]?.parent === stats.code);
  top.forEach((c, i) => {
    const a = (2 * Math.PI * i) / Math.max(1, top.length);
    positions[c] = [300 * Math.cos(a), 300 * Math.sin(a)];
    const kids = codes.filter((k) => byCode[k]?.parent === c);
    kids.forEach((k, j) => {
      const b = a + ((j - (kids.length - 1) / 2) * 0.9) / Math.max(1, kids.length);
      positions[k] = [470 * Math.cos(b), 470 * Math.sin(b)];
    });
  });
  const max = Math.max(1, ...codes.map((c) => Number(figures[c].received)));
  // Spread across the chart's width, in proportion, so that circles stay round.
  const ratio = Math.max(1, (element.clientWidth - 180) / Math.max(1, element.clientHeight - 130)) * 0.8;
  const data = codes.filter((c) => positions[c]).map((c) => ({
    name: figures[c].name, value: Number(figures[c].received), x: positions[c][0] * ratio, y: positions[c][1],
    symbolSize: c === stats.code ? 70 : c.length === 9 ? 52 : 34,
    itemStyle: Number(figures[c].overdue) > 0 ? { borderColor: "#d50000", borderWidth: 4 } : {},
    overdue: figures[c].overdue,
  }));
  // Two invisible corners fix the drawing's extent to the chart's proportions: a town's two villages
  // (or a village alone) lie on one line, and a graph stretched to fit a flat box draws nonsense.
  data.push(...[-1, 1].map((k) => ({ name: "　".repeat(k + 2), x: 520 * k * ratio / 0.8, y: 520 * k, symbolSize: 0,
    label: { show: false }, tooltip: { show: false }, itemStyle: { opacity: 0 } })));
  const links = codes.filter((c) => positions[c] && byCode[c]?.parent && positions[byCode[c].parent]).map((c) => ({
    source: figures[c].name, target: figures[byCode[c].parent].name,
    lineStyle: { color: byCode[c].upstream_link === "down" ? "#d50000" : "#43a047", width: 2,
      type: byCode[c].upstream_link === "down" ? "dashed" : "solid" },
  }));
  FQ.chart(element, {
    tooltip: { formatter: (p) => (p.dataType === "node" ? `${FQ.esc(p.name)}<br>受理 ${p.value} 件，超期 ${p.data.overdue} 件` : "上行链路") },
    visualMap: { min: 0, max, calculable: true, orient: "horizontal", left: "center", bottom: 0,
      text: ["受理多", "受理少"], inRange: { color: ["#e3f2fd", "#64b5f6", "#1565c0", "#0d47a1"] } },
    series: [{ type: "graph", layout: "none", roam: true, data, links, label: { show: true, position: "bottom",
      formatter: (p) => p.name.replace(/综治(中心|站)$/, "") }, top: 40, bottom: 90, left: 90, right: 90 }],
  });
};

FQ.trendChart = async (element, code) => {
  const days = Array.from({ length: 14 }, (_, i) => FQ.chinaDay(13 - i));
  const figures = await Promise.all(days.map((d) => FQ.api(`/api/v1/nodes/${code}/stats?period=${d}`)));
  FQ.chart(element, {
    tooltip: { trigger: "axis" }, legend: { data: ["受理", "办结"], top: 0 },
    grid: { left: 40, right: 20, top: 30, bottom: 30 },
    xAxis: { type: "category", data: days.map((d) => d.slice(5)) }, yAxis: { type: "value", minInterval: 1 },
    series: [
      { name: "受理", type: "line", smooth: true, data: figures.map((f) => Number(f.received)) },
      { name: "办结", type: "line", smooth: true, data: figures.map((f) => Number(f.closed)) },
    ],
  });
};

FQ.categoryChart = async (element, code, month) => {
  // Counted by the node over every case of the month (no sample), so exact at any volume.
  const stats = await FQ.api(`/api/v1/nodes/${code}/stats?period=${month}&categories=true`);
  const data = (stats.categories || []).map((c) => ({ name: c.category, value: Number(c.received) }));
  FQ.chart(element, {
    tooltip: { trigger: "item", formatter: "{b}：{c} 件（{d}%）" },
    series: [{ type: "pie", radius: ["35%", "68%"], data: data.length ? data : [{ name: "暂无案件", value: 0 }],
      label: { formatter: "{b} {c}" } }],
  });
};

FQ.overdueList = async (element) => {
  if (!FQ.can("cases.read")) {
    element.innerHTML = '<p class="muted">本角色不查看案件明细。</p>';
    return;
  }
  const page = await FQ.api(`/api/v1/cases?overdue=true&page_size=50&origin_node=${FQ.scope()}`);
  if (!page.items.length) {
    element.innerHTML = '<p class="muted">暂无超期案件。</p>';
    return;
  }
  element.innerHTML = `<table><thead><tr><th>受理编号</th><th>类别</th><th>时限</th><th>督办</th></tr></thead><tbody>
    ${page.items.map((c) => `<tr class="${c.supervisions > 0 ? "supervised" : ""}">
      <td><a href="#/case/${encodeURIComponent(c.id)}">${FQ.esc(c.receipt_no)}</a></td><td>${FQ.esc(c.category)}</td>
      <td>${FQ.time(c.deadline)}</td><td>${c.supervisions > 0 ? `督办 ${c.supervisions} 次` : "—"}</td></tr>`).join("")}
    </tbody></table>`;
};

FQ.rankingTable = (items, minSample) => {
  if (!items.length) return '<p class="muted">本期暂无交办记录。</p>';
  const badge = (l) => (l === "red" ? '<span class="badge red">红榜</span>' : l === "black" ? '<span class="badge black">黑榜</span>' : "");
  const mean = (m) => (m && Number(m.count) > 0 ? Number(m.value).toFixed(2) : "—");
  return `<table id="ranking"><thead><tr><th>名次</th><th>部门</th><th>交办</th><th>签收率</th><th>按期率</th><th>退单率</th>
    <th>满意度</th><th>得分</th><th></th></tr></thead>
    <tbody>${items.map((s) => `<tr><td>${s.rank || `<span class="muted" title="交办少于 ${FQ.esc(minSample)} 件不排名">样本不足</span>`}</td>
      <td>${FQ.esc(s.department)}</td><td>${s.assignments}</td><td>${FQ.pct(s.acknowledgement_rate)}</td>
      <td>${FQ.pct(s.on_time_rate)}</td><td>${FQ.pct(s.return_rate)}</td><td>${mean(s.satisfaction)}</td>
      <td>${s.rank ? Number(s.score).toFixed(1) : "—"}</td><td>${badge(s.list)}</td></tr>`).join("")}</tbody></table>
    <p class="muted">得分综合签收率、按期率、退单率与满意度；交办少于 ${FQ.esc(minSample)} 件的部门标为样本不足，不排名、不上榜。</p>`;
};

FQ.linkTable = (nodes, stale) => {
  const state = (n) => (n.upstream_link === "up" ? '<span class="ok">● 正常</span>'
    : n.upstream_link === "down" ? '<span class="bad">● 中断</span>' : '<span class="muted">— 县级</span>');
  return `<table><thead><tr><th>中心</th><th>上行链路</th><th>待同步</th><th>数据</th></tr></thead><tbody>
    ${nodes.map((n) => `<tr><td>${FQ.esc(n.name)}</td><td>${state(n)}</td><td>${n.upstream_lag}</td>
      <td>${stale.includes(n.code) ? '<span class="bad">滞后</span>' : "及时"}</td></tr>`).join("")}</tbody></table>`;
};

/* ---------- 登录 ---------- */

document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const reply = await fetch("/api/v1/auth/token", { method: "POST", body: new URLSearchParams(form) });
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) {
    document.getElementById("login-error").textContent = body.detail || "登录失败";
    return;
  }
  FQ.token = body.access_token;
  sessionStorage.setItem("fq-token", FQ.token);
  FQ.show();
});
document.getElementById("logout").addEventListener("click", FQ.logout);
window.addEventListener("hashchange", () => FQ.token && FQ.me && FQ.route());
window.addEventListener("resize", () => FQ.charts.forEach((c) => c.resize()));
window.addEventListener("DOMContentLoaded", () => FQ.show());
