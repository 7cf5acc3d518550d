/* 枫桥操作台：案件列表、案件详情（时间线、三单、吹哨报到与攻坚专班；办理步骤见 work.js）。 */
"use strict";

FQ.EVENTS = {
  received: "受理", triaged: "分类研判", assigned: "交办", acknowledged: "签收", returned: "退单",
  extension_requested: "延期申请", extension_decided: "延期审批", started: "处置", progress: "处置进展",
  feedback: "反馈", reviewed: "审核", closed: "办结", follow_up: "回访", followed_up: "回访", reopened: "发回重办",
  archived: "归档", deadline_warning: "临期预警", supervision: "督办", escalation_requested: "上报",
  escalation_accepted: "上级接收", escalation_refused: "上级退回", whistled: "中心吹哨", reported_for_duty: "部门报到",
  summons_overdue: "报到超时", task_force_formed: "成立攻坚专班", subtask_done: "专班子任务完成", subtask_overdue: "子任务超期",
};
FQ.STAGES = ["立项", "决策", "实施", "验收"];
FQ.LEVELS = { low: "低风险", medium: "中风险", high: "高风险" };

const options = (values, chosen, labels = {}) =>
  values.map((v) => `<option value="${FQ.esc(v)}"${v === chosen ? " selected" : ""}>${FQ.esc(labels[v] || v || "全部")}</option>`).join("");

FQ.views.cases = async (main) => {
  const query = new URLSearchParams(location.hash.split("?")[1] || "");
  const statuses = Object.keys(FQ.STATUS);
  main.innerHTML = `<h2>案件列表</h2>
    <form id="filters" class="filters">
      <label>类别<select name="category">${options(["", ...FQ.vocabulary.categories], query.get("category") || "")}</select></label>
      <label>状态<select name="status">${options(["", ...statuses.map((_, i) => String(i + 1))], query.get("status") || "",
        Object.fromEntries(statuses.map((s, i) => [String(i + 1), FQ.STATUS[s]])))}</select></label>
      <label>渠道<select name="channel">${options(["", ...FQ.vocabulary.channels], query.get("channel") || "")}</select></label>
      <label>响应<select name="response_class">${options(["", "routine", "urgent", "task_force"], query.get("response_class") || "",
        { routine: "即办", urgent: "应急", task_force: "攻坚" })}</select></label>
      <label class="check"><input type="checkbox" name="overdue" value="true"${query.get("overdue") ? " checked" : ""}>只看超期</label>
      <button type="submit">筛选</button>
    </form>
    <div id="case-table">正在加载…</div>`;
  document.getElementById("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams([...new FormData(event.target)].filter(([, v]) => v));
    location.hash = "#/cases?" + chosen.toString();
  });
  const params = new URLSearchParams([...query].filter(([, v]) => v));
  params.set("page_size", "50");
  await FQ.casePage(document.getElementById("case-table"), params);
};

FQ.casePage = async (element, params) => {
  const page = await FQ.api("/api/v1/cases?" + params.toString());
  const rows = page.items.map((c) => `<tr>
      <td><a href="#/case/${encodeURIComponent(c.id)}">${FQ.esc(c.receipt_no)}</a></td><td>${FQ.esc(c.category)}</td>
      <td>${FQ.esc(FQ.STATUS[c.status] || c.status)}${FQ.overdue(c) ? ' <span class="badge red">已超期</span>' : ""}</td><td>${FQ.esc(FQ.CLASSES[c.response_class] || "")}</td>
      <td>${FQ.esc(c.channel)}</td><td${c.personal_note ? ` class="muted" title="${FQ.esc(c.personal_note)}"` : ""}>${FQ.esc(c.personal_note ? "（个人信息无法解密）" : c.parties.map((p) => p.name).join("、"))}</td>
      <td>${FQ.time(c.received_at)}</td><td>${FQ.time(c.deadline)}</td><td>${FQ.esc(FQ.name(c.holder_node))}</td></tr>`);
  element.innerHTML = `<table class="cases"><thead><tr><th>受理编号</th><th>类别</th><th>状态</th><th>响应</th>
    <th>渠道</th><th>当事人</th><th>受理时间</th><th>办理时限</th><th>承办中心</th></tr></thead>
    <tbody>${rows.join("") || '<tr><td colspan="9" class="muted">没有符合条件的案件</td></tr>'}</tbody></table>
    ${page.next_page_token ? '<button id="more" type="button">下一页</button>' : ""}`;
  document.getElementById("more")?.addEventListener("click", () => {
    params.set("page_token", page.next_page_token);
    FQ.casePage(element, params).catch((err) => (element.innerHTML = `<p class="error">${FQ.esc(err.message)}</p>`));
  });
};

FQ.views.case = async (main, id) => {
  const [c, events] = await Promise.all([
    FQ.api(`/api/v1/cases/${encodeURIComponent(id)}`),
    FQ.api(`/api/v1/cases/${encodeURIComponent(id)}/events`),
  ]);
  const field = (k, v) => `<dt>${k}</dt><dd>${FQ.esc(v || "—")}</dd>`;
  const a = c.assignment || {}, f = c.feedback || {}, e = c.evaluation || {};
  const when = (t) => (t ? FQ.time(t) : "");
  const escalation = c.status === "CASE_STATUS_ESCALATING"
    ? `<p class="notice">已上报${FQ.esc(FQ.name(c.escalation_to))}，理由：${FQ.esc(c.decided_reason)}；待其接收或退回。</p>` : "";
  const summons = (c.summons || []).map((m) => `<li>吹哨召集 ${FQ.esc(m.department)}：${m.reported_at ? "已于 " + FQ.time(m.reported_at) + " 报到"
    : m.overdue ? '<span class="bad">报到超时</span>' : "报到时限 " + FQ.time(m.report_by)}</li>`).join("");
  const tasks = (c.subtasks || []).map((t) => `<tr><td>${FQ.esc(t.id)}</td><td>${FQ.esc(t.department)}</td><td>${FQ.esc(t.task)}</td>
    <td>${when(t.deadline) || "—"}</td><td>${t.done_at ? "已完成：" + FQ.esc(t.result) : t.overdue ? '<span class="bad">已超时</span>' : "办理中"}</td></tr>`).join("");
  const force = c.lead_department || summons ? `<section class="card wide" id="dispatch-card"><h3>吹哨报到与攻坚专班</h3>
    ${summons ? `<ul>${summons}</ul>` : ""}
    ${c.lead_department ? `<h4>攻坚专班（牵头：${FQ.esc(c.lead_department)}）</h4><table><thead><tr><th>编号</th><th>部门</th><th>任务</th>
      <th>时限</th><th>状态</th></tr></thead><tbody>${tasks || '<tr><td colspan="5" class="muted">无子任务</td></tr>'}</tbody></table>` : ""}</section>` : "";
  main.innerHTML = `<h2>案件 ${FQ.esc(c.receipt_no)} <span class="badge" id="case-status">${FQ.esc(FQ.STATUS[c.status] || c.status)}</span>
    ${FQ.overdue(c) ? '<span class="badge red" id="overdue-mark">已超期</span>' : ""}
    ${c.supervisions > 0 ? `<span class="badge red">督办 ${c.supervisions} 次</span>` : ""}
    <span class="holder">承办中心：${FQ.esc(FQ.name(c.holder_node))}</span></h2>${escalation}
    <div class="grid">
      <section class="card" id="actions"><h3>办理</h3><p class="muted">正在加载…</p></section>
      <section class="card"><h3>基本情况</h3><dl>
        ${field("类别", c.category)}${field("来源渠道", c.channel)}${field("响应等级", FQ.CLASSES[c.response_class])}
        ${field("事发地", FQ.name(c.division_code))}${field("网格", c.grid)}${field("地点", c.location?.address)}
        ${field("受理中心", FQ.name(c.origin_node))}${field("受理时间", FQ.time(c.received_at))}
        ${field("办理时限", FQ.time(c.deadline))}${field("承办中心", FQ.name(c.holder_node))}${field("上报者", c.reporter)}
        ${field("退单次数", c.returns)}${field("化解层级", c.mediation_level)}
        ${c.pending_extension?.reason ? field("延期申请", `${c.pending_extension.reason}（延至 ${when(c.pending_extension.new_deadline)}）`) : ""}</dl>
        <p class="desc">${FQ.esc(c.description)}</p>
        <h4>当事人</h4>${c.personal_note ? `<p class="muted">${FQ.esc(c.personal_note)}</p>` : ""}<ul>${c.parties.map((p) => `<li>${FQ.esc(p.role)}：${FQ.esc(p.name)} ${FQ.esc(p.phone)} ${FQ.esc(p.id_number)}</li>`).join("") || '<li class="muted">未登记</li>'}</ul>
      </section>
      <section class="card slips"><h3>三单</h3>
        <div class="slip"><h4>交办单</h4><dl>${field("承办部门", a.department)}${field("办理要求", a.requirement)}${field("时限", a.deadline ? FQ.time(a.deadline) : "")}
          ${field("签收", a.department ? (c.acknowledged ? "已签收" : "待签收") : "")}</dl></div>
        <div class="slip"><h4>反馈单</h4><dl>${field("办理结果", f.result)}${field("调解成功", f.result ? (f.mediated ? "是" : "否") : "")}
          ${field("调解层级", f.mediation_level)}${field("现场照片", (f.photos || []).length ? f.photos.length + " 张" : "")}
          ${field("签字材料", (f.signatures || []).length ? f.signatures.length + " 份" : "")}</dl></div>
        <div class="slip"><h4>评价单</h4><dl>${field("满意度", e.satisfaction ? e.satisfaction + " / 5" : "")}
          ${field("回访方式", e.method)}${field("评价", e.comment)}</dl></div>
      </section>
      ${force}
      <section class="card wide"><h3>时间线</h3><ol class="timeline">${events.items.map(FQ.eventItem).join("")}</ol></section>
    </div>`;
  await FQ.caseActions(document.getElementById("actions"), c);
};

FQ.eventItem = (event) => {
  const type = Object.keys(event).find((k) => FQ.EVENTS[k]) || "";
  const body = event[type] || {};
  const note = body.slip?.department || body.slip?.result || body.slip?.comment || body.reason || body.note
    || body.summary || body.opinion || (body.to_node ? "至" + FQ.name(body.to_node) : "") || "";
  return `<li><time>${FQ.time(event.at)}</time><b>${FQ.esc(FQ.EVENTS[type] || type)}</b>
    <span class="muted">${FQ.esc(FQ.name(event.node))} · ${FQ.esc(event.actor)}</span> ${FQ.esc(note)}</li>`;
};
