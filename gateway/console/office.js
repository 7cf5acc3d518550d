/* 枫桥操作台：工作指令、预警（研判预警与联防预警）、月报下载、操作员账号。 */
"use strict";

FQ.DIRECTIVE_STATUS = { DIRECTIVE_STATUS_ISSUED: "已下达", DIRECTIVE_STATUS_ACKNOWLEDGED: "已签收", DIRECTIVE_STATUS_COMPLETED: "已办结" };
FQ.children = () => (FQ.nodes || []).filter((n) => n.code !== FQ.me.here && n.code.startsWith(FQ.me.here));

/* ---------- 工作指令 / 交办事项 ---------- */

FQ.views.directives = async (main) => {
  const [incoming, outgoing] = await Promise.all([
    FQ.api("/api/v1/directives?direction=in&page_size=100"), FQ.api("/api/v1/directives?direction=out&page_size=100")]);
  const below = FQ.children().map((n) => [n.code, n.name]);
  const kind = (d) => (d.kind === "assignment" ? "交办事项" : "工作指令");
  const state = (d) => `${FQ.DIRECTIVE_STATUS[d.status] || d.status}${d.overdue ? ' <span class="badge red">已超期</span>' : ""}`;
  const row = (d, inbound) => `<tr data-directive="${FQ.esc(d.id)}"><td>${kind(d)}</td><td><b>${FQ.esc(d.title)}</b><br>
    <span class="muted">${FQ.esc(d.body)}</span></td><td>${FQ.esc(FQ.name(inbound ? d.from_node : d.to_node))}</td>
    <td>${FQ.time(d.issued_at)}</td><td>${d.deadline ? FQ.time(d.deadline) : "—"}</td><td class="state">${state(d)}</td>
    <td>${FQ.esc(d.result || "")}</td><td>${inbound && d.status !== "DIRECTIVE_STATUS_COMPLETED" ? `<form class="inline answer">
      <input name="text" placeholder="${d.status === "DIRECTIVE_STATUS_ISSUED" ? "签收意见" : "办理结果"}" required>
      <button type="submit" data-action="${d.status === "DIRECTIVE_STATUS_ISSUED" ? "acknowledge" : "complete"}">
      ${d.status === "DIRECTIVE_STATUS_ISSUED" ? "签收" : "办结"}</button><span class="error"></span></form>` : ""}</td></tr>`;
  const table = (items, inbound) => `<table><thead><tr><th>类型</th><th>标题与内容</th><th>${inbound ? "下达中心" : "受令中心"}</th>
    <th>下达时间</th><th>时限</th><th>状态</th><th>办理结果</th><th></th></tr></thead><tbody>
    ${items.map((d) => row(d, inbound)).join("") || '<tr><td colspan="8" class="muted">暂无</td></tr>'}</tbody></table>`;
  main.innerHTML = `<h2>工作指令与交办事项</h2><div class="grid">
    ${below.length ? FQ.formHtml("directive-form", "向下级中心下达", [
      ["to_node", "受令中心", "select", { options: below, required: true }],
      ["kind", "类型", "select", { options: [["directive", "工作指令"], ["assignment", "交办事项"]] }],
      ["title", "标题", "text", { required: true }], ["body", "内容", "textarea"], ["deadline", "办理时限", "datetime"],
    ], "下达") : ""}
    <section class="card wide" id="directives-in"><h3>收到的</h3>${table(incoming.items, true)}</section>
    <section class="card wide" id="directives-out"><h3>下达的（受令中心办理情况）</h3>${table(outgoing.items, false)}</section></div>`;
  FQ.bind("directive-form", async (v) => {
    await FQ.post("/api/v1/directives", { to_node: v.to_node, kind: v.kind, title: v.title, body: v.body,
      deadline: FQ.isoOf(v.deadline) });
    FQ.route();
  });
  main.querySelectorAll("form.answer").forEach((form) => form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = form.closest("tr").dataset.directive, action = form.querySelector("button").dataset.action;
    try {
      await FQ.post(`/api/v1/directives/${encodeURIComponent(id)}/${action}`, { text: form.elements.text.value.trim() });
      FQ.route();
    } catch (err) {
      form.querySelector(".error").textContent = err.message;
    }
  }));
};

/* ---------- 预警：研判预警（统计）与联防预警（相邻乡镇） ---------- */

FQ.RISK_KINDS = { boundary_dispute: "边界纠纷", wanted_vehicle: "布控车辆", missing_person: "走失人员", other: "其他" };
FQ.RISK_LEVELS = { low: "低", medium: "中", high: "高" };

FQ.views.alerts = async (main) => {
  const [trend, risks] = await Promise.all([
    FQ.can("figures.read") ? FQ.api("/api/v1/alerts") : null,
    FQ.can("joint.read") ? FQ.api("/api/v1/risk-alerts?page_size=100") : null,
  ]);
  const trendHtml = !trend ? "" : `<section class="card wide" id="trend-alerts"><h3>研判预警（某类案件明显高于本地近期基线）
    ${trend.stale ? '<span class="badge red">部分下级数据滞后</span>' : ""}</h3>
    <table><thead><tr><th>地区</th><th>类别</th><th>近期</th><th>基线期望</th><th>倍数</th><th>原因</th></tr></thead><tbody>
    ${trend.items.map((a) => `<tr><td>${FQ.esc(a.area_name || FQ.name(a.area))}</td><td>${FQ.esc(a.category)}</td>
      <td>${a.observed}</td><td>${Number(a.expected).toFixed(1)}</td><td>${Number(a.ratio).toFixed(1)}</td>
      <td>${FQ.esc(a.message)}</td></tr>`).join("") || '<tr><td colspan="6" class="muted">暂无研判预警</td></tr>'}</tbody></table></section>`;
  const riskHtml = !risks ? "" : `<section class="card wide" id="risk-alerts"><h3>联防预警（相邻乡镇互相通报）</h3>
    <table><thead><tr><th>类型</th><th>等级</th><th>标题与内容</th><th>发出中心</th><th>通报中心</th><th>发出时间</th><th>确认</th></tr></thead><tbody>
    ${risks.items.map((r) => `<tr><td>${FQ.esc(FQ.RISK_KINDS[r.kind] || r.kind)}</td><td>${FQ.esc(FQ.RISK_LEVELS[r.level] || r.level)}</td>
      <td><b>${FQ.esc(r.title)}</b><br><span class="muted">${FQ.esc(r.body)}</span></td><td>${FQ.esc(FQ.name(r.from_node))}</td>
      <td>${r.to_nodes.map((c) => FQ.esc(FQ.name(c))).join("、")}</td><td>${FQ.time(r.raised_at)}</td>
      <td>${r.fully_acknowledged ? "均已确认" : `${r.acks.length} / ${r.to_nodes.length} 已确认`}
      ${FQ.can("joint.manage") && r.to_nodes.includes(FQ.me.here) && !r.acks.some((a) => a.node === FQ.me.here)
        ? `<form class="inline ack" data-alert="${FQ.esc(r.id)}"><input name="note" placeholder="确认意见">
          <button type="submit">确认收到</button><span class="error"></span></form>` : ""}</td></tr>`).join("")
      || '<tr><td colspan="7" class="muted">暂无联防预警</td></tr>'}</tbody></table></section>`;
  main.innerHTML = `<h2>预警</h2><div class="grid">${trendHtml}${riskHtml}</div>`;
  main.querySelectorAll("form.ack").forEach((form) => form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await FQ.post(`/api/v1/risk-alerts/${encodeURIComponent(form.dataset.alert)}/acknowledge`,
        { note: form.elements.note.value.trim() });
      FQ.route();
    } catch (err) {
      form.querySelector(".error").textContent = err.message;
    }
  }));
};

/* ---------- 月报与省级数据上报下载 ---------- */

FQ.download = async (path, fallback) => {
  const reply = await fetch(path, { headers: { Authorization: "Bearer " + FQ.token } });
  if (!reply.ok) {
    const body = await reply.json().catch(() => ({}));
    throw new Error(body.detail || "下载失败（" + reply.status + "）");
  }
  const disposition = reply.headers.get("Content-Disposition") || "";
  const named = /filename\*=UTF-8''([^;]+)/.exec(disposition);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await reply.blob());
  link.download = named ? decodeURIComponent(named[1]) : fallback;
  document.body.appendChild(link);
  link.click();
  link.remove();
};

FQ.views.reports = async (main) => {
  const month = FQ.chinaDay().slice(0, 7);
  const areas = [[FQ.scope(), FQ.name(FQ.scope())], ...FQ.children().map((n) => [n.code, n.name])];
  main.innerHTML = `<h2>月报与省级数据上报</h2>${FQ.formHtml("report-form", "月报下载（中文表头）", [
    ["period", "统计月份", "text", { value: month, required: true, placeholder: "如 2026-11" }],
    ["code", "统计范围", "select", { options: areas }],
    ["format", "格式", "select", { options: [["xlsx", "Excel（XLSX）"], ["csv", "CSV"]] }],
  ], "下载")}
    ${FQ.formHtml("feed-form", "省级数据上报（已签名、不含个人信息的 JSON）", [
      ["period", "统计周期", "text", { value: month, required: true, placeholder: "如 2026-11、2026Q4" }],
    ], "下载上报数据")}`;
  FQ.bind("feed-form", async (v) => {
    await FQ.download(`/api/v1/feed/provincial?period=${encodeURIComponent(v.period)}`, `省级上报-${v.period}.json`);
  });
  FQ.bind("report-form", async (v) => {
    if (!/^\d{4}-\d{2}$/.test(v.period)) throw new Error("统计月份应为 年-月，如 2026-11");
    await FQ.download(`/api/v1/reports/monthly?period=${v.period}&format=${v.format}&code=${v.code}`, `月报-${v.period}.${v.format}`);
  });
};

/* ---------- 操作员账号（县级、乡镇管理员） ---------- */

FQ.ROLES = [["grid_worker", "网格员"], ["mediator", "部门/调解员"], ["duty_officer", "中心值班员"],
  ["county_admin", "县级管理员"], ["province_readonly", "省级只读"]];

FQ.views.accounts = async (main) => {
  const users = await FQ.api("/api/v1/users");
  const centers = [[FQ.me.here, FQ.me.here_name], ...FQ.children().map((n) => [n.code, n.name])];
  main.innerHTML = `<h2>操作员账号（${FQ.esc(FQ.me.here_name)}及下级）</h2><div class="grid">
    ${FQ.formHtml("user-form", "新建账号或重置密码（同名账号即重置）", [
      ["username", "用户名", "text", { required: true }], ["display_name", "姓名", "text"],
      ["role", "角色", "select", { options: FQ.ROLES.filter(([r]) => r !== "province_readonly") }],
      ["node_code", "所属中心", "select", { options: centers }],
      ["department", "所属部门（部门/调解员必填）", "text", { placeholder: "如 司法所" }],
      ["password", "密码（至少 10 位）", "password", { required: true }],
    ], "保存")}
    <section class="card wide"><h3>现有账号</h3><p class="error" id="users-error" role="alert"></p>
      <table id="users"><thead><tr><th>用户名</th><th>姓名</th><th>角色</th><th>所属中心</th>
      <th>部门</th><th>状态</th><th>管理中心</th><th></th></tr></thead><tbody>${users.map((u) => {
        const mine = u.managed_by === FQ.me.here;
        const actions = !mine ? `<span class="muted">由${FQ.esc(FQ.name(u.managed_by))}管理</span>`
          : `<button type="button" class="plain reset" data-user="${FQ.esc(u.username)}">重置密码</button>
             <button type="button" class="plain toggle" data-user="${FQ.esc(u.username)}"
               data-action="${u.disabled ? "enable" : "disable"}">${u.disabled ? "启用" : "停用"}</button>`;
        return `<tr><td>${FQ.esc(u.username)}</td><td>${FQ.esc(u.display_name)}</td>
      <td>${FQ.esc(u.role_label)}</td><td>${FQ.esc(FQ.name(u.node_code))}</td><td>${FQ.esc(u.department || "—")}</td>
      <td>${u.disabled ? '<span class="badge red">已停用</span>' : "正常"}</td><td>${FQ.esc(FQ.name(u.managed_by))}</td>
      <td>${actions}</td></tr>`;
      }).join("")}</tbody></table></section></div>`;
  FQ.bind("user-form", async (v) => {
    if (v.password.length < 10) throw new Error("密码至少 10 位");
    if (v.role === "mediator" && !v.department) throw new Error("部门/调解员须填写所属部门");
    await FQ.post("/api/v1/users", { ...v, department: v.role === "mediator" ? v.department : "" });
    FQ.route();
  });
  main.querySelectorAll("button.toggle").forEach((button) => button.addEventListener("click", async () => {
    const { user, action } = button.dataset;
    if (action === "disable" && !confirm(`停用账号 ${user}？停用后不能登录，已签发的令牌也失效。`)) return;
    try {
      await FQ.post(`/api/v1/users/${encodeURIComponent(user)}/${action}`, {});
      FQ.route();
    } catch (err) {
      document.getElementById("users-error").textContent = err.message;
    }
  }));
  main.querySelectorAll("button.reset").forEach((button) => button.addEventListener("click", () => {
    const u = users.find((x) => x.username === button.dataset.user);
    const form = document.getElementById("user-form");
    form.elements.username.value = u.username;
    form.elements.display_name.value = u.display_name;
    form.elements.role.value = u.role;
    form.elements.node_code.value = u.node_code;
    form.elements.department.value = u.department || "";
    form.elements.password.focus();
  }));
};
