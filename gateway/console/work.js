/* 枫桥操作台：日常办理——受理、待办队列、案件页上的闭环步骤（每步一张单据）。服务器是最终裁判，其拒绝原因原样显示。 */
"use strict";

const ACTIVE = ["CASE_STATUS_TRIAGED", "CASE_STATUS_RETURNED", "CASE_STATUS_REOPENED", "CASE_STATUS_ASSIGNED",
  "CASE_STATUS_ACKNOWLEDGED", "CASE_STATUS_IN_PROGRESS"];
const ESCALABLE = ["CASE_STATUS_RECEIVED", ...ACTIVE];
const FINISHED = ["CASE_STATUS_CLOSED", "CASE_STATUS_FOLLOWED_UP", "CASE_STATUS_ARCHIVED"];
const CLASS_OPTIONS = [["RESPONSE_CLASS_ROUTINE", "即办"], ["RESPONSE_CLASS_URGENT", "应急"], ["RESPONSE_CLASS_TASK_FORCE", "攻坚"]];
const LEVELS = ["网格员现场调解", "中心联合调解", "专业调解"];

FQ.overdue = (c) => !!c.deadline && !FINISHED.includes(c.status) && new Date(c.deadline) < new Date();

/* ---------- 受理 ---------- */

FQ.partyRow = (i) => `<div class="party" data-i="${i}">${[
  [`party_name_${i}`, "姓名", "text", { required: i === 0 }],
  [`party_role_${i}`, "身份", "select", { options: ["申请人", "被申请人", "反映人", "当事人"] }],
  [`party_id_${i}`, "身份证号", "text", { placeholder: "18 位，可不填" }],
  [`party_phone_${i}`, "电话", "text", { placeholder: "手机或固话，可不填" }],
].map(FQ.field).join("")}</div>`;

FQ.views.intake = async (main) => {
  const places = [[FQ.me.here, FQ.me.here_name], ...(FQ.nodes || []).filter((n) => n.code !== FQ.me.here)
    .map((n) => [n.code, n.name])];
  main.innerHTML = `<h2>受理（${FQ.esc(FQ.me.here_name)}）</h2>
    ${FQ.formHtml("intake-form", "受理登记", [
      ["channel", "来源渠道", "select", { options: FQ.vocabulary.channels, required: true }],
      ["category", "案件类别", "select", { options: FQ.vocabulary.categories, required: true }],
      ["response_class", "响应等级", "select", { options: [["routine", "即办"], ["urgent", "应急"], ["task_force", "攻坚"]] }],
      ["division_code", "事发村（社区）", "select", { options: places }],
      ["grid", "网格", "text", { placeholder: "如 第3网格" }],
      ["address", "事发地点", "text", { placeholder: "村、组、门牌" }],
      ["description", "情况描述", "textarea", { required: true }],
    ], "受理", `<h4>当事人</h4><div id="parties">${FQ.partyRow(0)}${FQ.partyRow(1)}</div>
      <button type="button" id="add-party" class="plain">＋ 再加一位当事人</button>`)}
    <div id="intake-done"></div>`;
  document.getElementById("add-party").addEventListener("click", () => {
    const box = document.getElementById("parties");
    box.insertAdjacentHTML("beforeend", FQ.partyRow(box.children.length));
  });
  FQ.bind("intake-form", async (v, form) => {
    const parties = [...document.querySelectorAll("#parties .party")].map((row) => row.dataset.i)
      .filter((i) => v[`party_name_${i}`]).map((i) => ({ name: v[`party_name_${i}`], role: v[`party_role_${i}`],
        id_number: v[`party_id_${i}`], phone: v[`party_phone_${i}`] }));
    const reply = await FQ.post("/api/v1/cases", {
      client_request_id: crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random(),
      channel: v.channel, category: v.category, response_class: v.response_class, division_code: v.division_code,
      grid: v.grid, location: { address: v.address }, description: v.description, parties,
    });
    form.reset();
    document.getElementById("intake-done").innerHTML = `<p class="ok">已受理，受理编号
      <a href="#/case/${encodeURIComponent(reply.case.id)}">${FQ.esc(reply.case.receipt_no)}</a>。</p>`;
  }, (form) => {
    const problems = [];
    form.querySelectorAll("#parties .party").forEach((row) => {
      const i = row.dataset.i, who = `第 ${Number(i) + 1} 位当事人`;
      const id = FQ.idProblem(form.elements[`party_id_${i}`].value.trim());
      const phone = FQ.phoneProblem(form.elements[`party_phone_${i}`].value.trim());
      if (id) problems.push(`${who}：${id}`);
      if (phone) problems.push(`${who}：${phone}`);
    });
    return problems;
  });
};

/* ---------- 待办 ---------- */

FQ.views.todo = async (main) => {
  const here = FQ.me.here;
  const lists = [];
  const query = (status, extra = "") => `/api/v1/cases?page_size=100&holder_node=${here}${status ? "&status=" + FQ.STATUS_CODE[status] : ""}${extra}`;
  if (FQ.can("cases.direct")) {
    lists.push(["上报待接收", `/api/v1/cases?page_size=100&status=${FQ.STATUS_CODE.CASE_STATUS_ESCALATING}`,
      (c) => c.escalation_to === here]);
    lists.push(["待研判", query("CASE_STATUS_RECEIVED")]);
    lists.push(["待交办", query("CASE_STATUS_TRIAGED")], ["退单待重新交办", query("CASE_STATUS_RETURNED")],
      ["发回重办", query("CASE_STATUS_REOPENED")]);
    lists.push(["待审核", query("CASE_STATUS_FEEDBACK")], ["待办结", query("CASE_STATUS_REVIEWED")],
      ["待回访", query("CASE_STATUS_CLOSED")], ["待归档", query("CASE_STATUS_FOLLOWED_UP")]);
  }
  if (FQ.can("cases.handle") && !FQ.can("cases.direct")) {
    lists.push(["待签收", query("CASE_STATUS_ASSIGNED")]);
    lists.push(["办理中", query("CASE_STATUS_ACKNOWLEDGED")], ["办理中（处置）", query("CASE_STATUS_IN_PROGRESS")]);
  }
  lists.push(["已超期", query("", "&overdue=true")]);
  const pages = await Promise.all(lists.map(([, path]) => FQ.api(path)));
  const title = FQ.me.department ? `${FQ.me.department}收件箱` : "待办";
  main.innerHTML = `<h2>${FQ.esc(title)}（${FQ.esc(FQ.me.here_name)}）</h2><div class="queues">
    ${lists.map(([label, , keep], i) => {
      const items = pages[i].items.filter(keep || (() => true));
      return `<section class="card queue" data-queue="${FQ.esc(label)}"><h3>${FQ.esc(label)} <span class="count${items.length ? "" : " none"}">${items.length}</span></h3>
        ${items.length ? `<table><tbody>${items.map(FQ.queueRow).join("")}</tbody></table>` : '<p class="muted">暂无</p>'}</section>`;
    }).join("")}</div>`;
};

FQ.queueRow = (c) => `<tr><td><a href="#/case/${encodeURIComponent(c.id)}">${FQ.esc(c.receipt_no)}</a>
  ${FQ.overdue(c) ? '<span class="badge red">已超期</span>' : ""}</td><td>${FQ.esc(c.category)}</td>
  <td>${FQ.esc(FQ.name(c.holder_node))}</td><td>${FQ.time(c.deadline)}</td></tr>`;

/* ---------- 案件页上的步骤 ---------- */

FQ.departments = async () => {
  if (!FQ.can("departments.read")) return [];
  if (!FQ.departmentList) FQ.departmentList = (await FQ.api("/api/v1/departments")).items;
  return FQ.departmentList;
};

/* 本账号此刻可在本中心对该案件办理的步骤：[步骤, 按钮, 字段, 单据]。由状态与本角色权限推出。 */
FQ.stepsFor = async (c) => {
  const here = FQ.me.here, direct = FQ.can("cases.direct"), handle = FQ.can("cases.handle");
  const mine = !FQ.me.department || FQ.me.department === c.assignment?.department;
  const steps = [];
  if (c.status === "CASE_STATUS_ESCALATING") {
    if (direct && c.escalation_to === here) {
      steps.push(["accept-escalation", "接收上报", [], () => ({})]);
      steps.push(["refuse-escalation", "退回上报", [["reason", "退回理由", "textarea", { required: true }]],
        (v) => ({ reason: v.reason })]);
    }
    return steps;
  }
  if (c.holder_node !== here) return steps;
  const depts = (await FQ.departments()).map((d) => [d.name, `${d.name}（${d.presence_label}）`]);
  const s = c.status;
  if (direct && ["CASE_STATUS_RECEIVED", "CASE_STATUS_RETURNED", "CASE_STATUS_REOPENED"].includes(s))
    steps.push(["triage", "分类研判", [
      ["category", "案件类别", "select", { options: FQ.vocabulary.categories, value: c.category }],
      ["response_class", "响应等级", "select", { options: CLASS_OPTIONS, value: c.response_class }],
      ["deadline", "办理时限（攻坚必填）", "datetime"], ["note", "研判意见", "textarea"],
    ], (v) => ({ category: v.category, response_class: v.response_class, deadline: FQ.isoOf(v.deadline), note: v.note })]);
  if (direct && ["CASE_STATUS_TRIAGED", "CASE_STATUS_RETURNED", "CASE_STATUS_REOPENED"].includes(s)) {
    steps.push(["assign", "交办", [
      ["department", "承办部门", "select", { options: depts, required: true }],
      ["requirement", "办理要求", "textarea", { required: true }], ["deadline", "办理时限", "datetime"],
    ], (v) => ({ slip: { department: v.department, requirement: v.requirement, deadline: FQ.isoOf(v.deadline) } })]);
    steps.push(["dispatch", "按类别派单", [
      ["department", "承办部门", "select", { options: [["", "按类别自动确定"], ...depts] }],
      ["requirement", "办理要求", "textarea", { required: true }], ["deadline", "办理时限", "datetime"],
    ], (v) => ({ department: v.department, requirement: v.requirement, deadline: FQ.isoOf(v.deadline) })]);
  }
  if (handle && mine && s === "CASE_STATUS_ASSIGNED") steps.push(["acknowledge", "签收", [], () => ({})]);
  if (handle && mine && ["CASE_STATUS_ASSIGNED", "CASE_STATUS_ACKNOWLEDGED"].includes(s))
    steps.push(["return", "退单", [["reason", "退单理由", "textarea", { required: true }]], (v) => ({ reason: v.reason })]);
  if (handle && mine && ["CASE_STATUS_ASSIGNED", "CASE_STATUS_ACKNOWLEDGED", "CASE_STATUS_IN_PROGRESS"].includes(s)
    && !c.pending_extension?.reason)
    steps.push(["extension", "申请延期", [["reason", "延期依据", "textarea", { required: true }],
      ["new_deadline", "申请延至", "datetime", { required: true }]],
    (v) => ({ reason: v.reason, new_deadline: FQ.isoOf(v.new_deadline) })]);
  if (direct && c.pending_extension?.reason)
    steps.push(["extension-decision", "延期审批", [
      ["granted", "审批结果", "select", { options: [["true", "同意延期"], ["false", "不同意"]] }],
      ["reason", "审批意见", "textarea"]], (v) => ({ granted: v.granted === "true", reason: v.reason })]);
  if (handle && mine && s === "CASE_STATUS_ACKNOWLEDGED")
    steps.push(["start", "开始处置", [["note", "处置说明", "textarea"]], (v) => ({ note: v.note })]);
  if (handle && mine && s === "CASE_STATUS_IN_PROGRESS") {
    steps.push(["progress", "处置进展", [["note", "进展情况", "textarea", { required: true }]], (v) => ({ note: v.note })]);
    steps.push(["feedback", "反馈", [
      ["result", "办理结果", "textarea", { required: true }], ["mediated", "调解成功", "check"],
      ["mediation_level", "调解层级", "select", { options: LEVELS }],
      ["photos", "现场照片", "files"], ["signatures", "签字材料", "files"],
    ], (v) => ({ slip: { result: v.result, mediated: v.mediated, mediation_level: v.mediation_level,
      photos: v.photos, signatures: v.signatures } })]);
  }
  if (direct && s === "CASE_STATUS_FEEDBACK")
    steps.push(["review", "审核", [
      ["approved", "审核结论", "select", { options: [["true", "通过"], ["false", "发回整改"]] }],
      ["opinion", "审核意见", "textarea"]], (v) => ({ approved: v.approved === "true", opinion: v.opinion })]);
  if (direct && s === "CASE_STATUS_REVIEWED")
    steps.push(["close", "办结", [["summary", "办结摘要", "textarea", { required: true }],
      ["mediation_level", "化解层级", "select", { options: LEVELS, value: c.feedback?.mediation_level }]],
    (v) => ({ summary: v.summary, mediation_level: v.mediation_level })]);
  if (direct && s === "CASE_STATUS_CLOSED")
    steps.push(["follow-up", "回访", [
      ["satisfaction", "满意度", "select", { options: [["5", "5 非常满意"], ["4", "4 满意"], ["3", "3 基本满意"],
        ["2", "2 不满意（发回重办）"], ["1", "1 非常不满意（发回重办）"]] }],
      ["method", "回访方式", "select", { options: ["电话回访", "上门回访", "短信回访"] }],
      ["comment", "群众评价", "textarea"]],
    (v) => ({ slip: { satisfaction: Number(v.satisfaction), method: v.method, comment: v.comment } })]);
  if (direct && s === "CASE_STATUS_FOLLOWED_UP")
    steps.push(["archive", "归档", [["note", "归档说明", "textarea"]], (v) => ({ note: v.note })]);
  if (direct && ACTIVE.includes(s)) {
    steps.push(["whistle", "中心吹哨", [["reason", "吹哨事由", "textarea", { required: true }],
      ["departments", "召集部门（不选为按类别）", "multi", { options: depts }]],
    (v) => ({ reason: v.reason, departments: v.departments })]);
    if (!c.lead_department && c.response_class === "RESPONSE_CLASS_TASK_FORCE")
      steps.push(["task-force", "成立攻坚专班", [["lead_department", "牵头部门", "select", { options: depts, required: true }],
        ...[0, 1, 2].flatMap((i) => [[`sub_department_${i}`, `子任务 ${i + 1} 部门`, "select", { options: [["", "—"], ...depts] }],
          [`sub_task_${i}`, `子任务 ${i + 1} 内容`, "text"], [`sub_deadline_${i}`, `子任务 ${i + 1} 时限`, "datetime"]])],
      (v) => ({ lead_department: v.lead_department, subtasks: [0, 1, 2].filter((i) => v[`sub_department_${i}`] && v[`sub_task_${i}`])
        .map((i) => ({ department: v[`sub_department_${i}`], task: v[`sub_task_${i}`], deadline: FQ.isoOf(v[`sub_deadline_${i}`]) })) })]);
  }
  const unreported = (c.summons || []).filter((m) => !m.reported_at && (!FQ.me.department || m.department === FQ.me.department));
  if (handle && unreported.length)
    steps.push(["report", "部门报到", [["department", "报到部门", "select", { options: unreported.map((m) => m.department) }]],
      (v) => ({ department: v.department })]);
  const open = (c.subtasks || []).filter((t) => !t.done_at && (!FQ.me.department || t.department === FQ.me.department));
  if (handle && open.length)
    steps.push(["subtask-done", "完成专班子任务", [["subtask_id", "子任务", "select",
      { options: open.map((t) => [t.id, `${t.id} ${t.department}：${t.task}`]) }], ["result", "完成情况", "textarea", { required: true }]],
    (v) => ({ subtask_id: v.subtask_id, result: v.result })]);
  if (direct && ESCALABLE.includes(s) && c.holder_node.length > 6)
    steps.push(["escalate", "上报", [["reason", "上报理由", "textarea", { required: true }]], (v) => ({ reason: v.reason })]);
  return steps;
};

/* 案件页的“办理”卡片：每个可办步骤一个按钮，点开是它的单据。 */
FQ.caseActions = async (element, c) => {
  const steps = await FQ.stepsFor(c);
  if (!steps.length) {
    const why = !FQ.can("cases.handle") && !FQ.can("cases.direct") ? "本角色只查看案件，不办理。"
      : c.status === "CASE_STATUS_ESCALATING" ? `案件正在上报${FQ.esc(FQ.name(c.escalation_to))}，待其接收或退回。`
      : c.holder_node !== FQ.me.here ? `案件由${FQ.esc(FQ.name(c.holder_node))}承办，请在该中心办理。`
      : FQ.me.department && c.assignment?.department !== FQ.me.department ? `本案交办给${FQ.esc(c.assignment?.department || "其他部门")}，不由${FQ.esc(FQ.me.department)}办理。`
      : c.status === "CASE_STATUS_ARCHIVED" ? "案件已归档，闭环完成。" : "本角色此刻没有可办理的步骤。";
    element.innerHTML = `<h3>办理</h3><p class="muted" id="no-steps">${why}</p>`;
    return;
  }
  element.innerHTML = `<h3>办理</h3><div class="step-buttons">${steps.map(([step, label]) =>
    `<button type="button" class="step" data-step="${step}">${FQ.esc(label)}</button>`).join("")}</div><div id="step-form"></div>`;
  element.querySelectorAll("button.step").forEach((button) => button.addEventListener("click", () => {
    const [step, label, fields, slip] = steps.find(([s]) => s === button.dataset.step);
    element.querySelectorAll("button.step").forEach((b) => b.classList.toggle("on", b === button));
    document.getElementById("step-form").innerHTML = FQ.formHtml("step-" + step, label + (fields.length ? "单" : ""), fields, "确认" + label);
    FQ.bind("step-" + step, async (values) => {
      const body = { ...slip(values), expected_version: Number(c.version) };
      await FQ.post(`/api/v1/cases/${encodeURIComponent(c.id)}/${step}`, body);
      FQ.route();
    });
  }));
};
