/* 枫桥操作台：三联联合案件（发起、应邀、成员、任务、工作记录、签字）与四必评（登记、各环节评估、隐患销号）。 */
"use strict";

FQ.JOINT_STATUS = { JOINT_CASE_STATUS_OPEN: "办理中", JOINT_CASE_STATUS_CLOSED: "联合办结", JOINT_CASE_STATUS_DECLINED: "未成立" };
FQ.PARTICIPANT = { JOINT_PARTICIPANT_STATUS_INVITED: "待答复", JOINT_PARTICIPANT_STATUS_ACCEPTED: "已接受",
  JOINT_PARTICIPANT_STATUS_DECLINED: "已拒绝" };
FQ.neighbours = () => FQ.vocabulary.centers.filter((n) => n.tier === 2 && n.code !== FQ.me.here
  && n.code.slice(0, 6) === FQ.me.here.slice(0, 6));

/* ---------- 三联 ---------- */

FQ.views.joint = async (main) => {
  const page = await FQ.api("/api/v1/joint-cases?page_size=100");
  const near = FQ.neighbours().map((n) => [n.code, n.name]);
  const canOpen = FQ.can("joint.manage") && near.length;
  main.innerHTML = `<h2>三联联合案件（一案一专班）</h2><div class="grid">
    ${canOpen ? FQ.formHtml("joint-form", "发起联合案件，邀请相邻乡镇", [
      ["title", "案件名称", "text", { required: true }],
      ["category", "类别", "select", { options: FQ.vocabulary.categories }],
      ["invited", "邀请乡镇", "multi", { options: near }], ["description", "情况", "textarea"],
    ], "发起") : ""}
    <section class="card wide"><table id="joint-cases"><thead><tr><th>案件</th><th>类别</th><th>牵头乡镇</th>
    <th>参与乡镇</th><th>专班成员</th><th>任务</th><th>状态</th><th>发起时间</th></tr></thead><tbody>
    ${page.items.map((j) => `<tr><td><a href="#/joint-case/${encodeURIComponent(j.id)}">${FQ.esc(j.title)}</a></td>
      <td>${FQ.esc(j.category)}</td><td>${FQ.esc(FQ.name(j.lead_node))}</td>
      <td>${j.participants.map((p) => FQ.esc(FQ.name(p.node)) + (p.signed_off ? "✔" : "")).join("、")}</td><td>${j.members.length}</td>
      <td>${j.tasks.filter((t) => t.done).length} / ${j.tasks.length}</td><td>${FQ.esc(FQ.JOINT_STATUS[j.status] || j.status)}</td>
      <td>${FQ.time(j.opened_at)}</td></tr>`).join("") || '<tr><td colspan="8" class="muted">暂无联合案件</td></tr>'}
    </tbody></table></section></div>`;
  FQ.bind("joint-form", async (v) => {
    if (!v.invited.length) throw new Error("请至少邀请一个相邻乡镇");
    const j = await FQ.post("/api/v1/joint-cases", { title: v.title, category: v.category, description: v.description,
      invited: v.invited });
    location.hash = "#/joint-case/" + encodeURIComponent(j.id);
  });
};

FQ.jointEvent = ({ event: e, applied, note }) => {
  const what = e.opened ? `发起：${e.opened.title}` : e.answered ? (e.answered.accept ? "接受邀请" : `拒绝邀请：${e.answered.reason}`)
    : e.note ? `工作记录：${e.note}` : e.member_added ? `专班成员：${e.member_added.name}（${e.member_added.unit}）`
    : e.task_added ? `分派任务给${FQ.name(e.task_added.node)}：${e.task_added.title}`
    : e.task_completed ? `完成任务 ${e.task_completed.task_id}：${e.task_completed.result}`
    : e.signed_off !== undefined ? `签字：${e.signed_off}` : "";
  return `<li><time>${FQ.time(e.at)}</time><b>${FQ.esc(FQ.name(e.node))}</b> <span class="muted">${FQ.esc(e.actor)}</span>
    ${FQ.esc(what)}${applied ? "" : ` <span class="bad">（未生效：${FQ.esc(note)}）</span>`}</li>`;
};

FQ.views["joint-case"] = async (main, id) => {
  const path = `/api/v1/joint-cases/${encodeURIComponent(id)}`;
  const [j, timeline] = await Promise.all([FQ.api(path), FQ.api(path + "/timeline")]);
  const me = j.participants.find((p) => p.node === FQ.me.here);
  const open = j.status === "JOINT_CASE_STATUS_OPEN";
  const manage = FQ.can("joint.manage"), work = FQ.can("joint.work");
  const forms = [];
  if (open && manage && me?.status === "JOINT_PARTICIPANT_STATUS_INVITED")
    forms.push(FQ.formHtml("joint-answer", "答复邀请", [["accept", "答复", "select", { options: [["true", "接受"], ["false", "拒绝"]] }],
      ["reason", "理由（拒绝时必填）", "textarea"]], "答复"));
  const accepted = me?.status === "JOINT_PARTICIPANT_STATUS_ACCEPTED";
  if (open && accepted && work) forms.push(FQ.formHtml("joint-note", "工作记录", [["text", "记录", "textarea", { required: true }]], "记入时间线"));
  if (open && accepted && manage) {
    forms.push(FQ.formHtml("joint-member", "添加本镇专班成员", [["name", "姓名", "text", { required: true }],
      ["unit", "单位", "text", { required: true, placeholder: "调解员、司法所、派出所……" }], ["role", "专班职务", "text", { value: "成员" }],
      ["phone", "电话", "text"]], "添加"));
    const towns = j.participants.filter((p) => p.status === "JOINT_PARTICIPANT_STATUS_ACCEPTED").map((p) => [p.node, FQ.name(p.node)]);
    forms.push(FQ.formHtml("joint-task", "分派专班任务", [["node", "承担乡镇", "select", { options: towns }],
      ["title", "任务内容", "text", { required: true }], ["deadline", "办理时限", "datetime", { required: true }]], "分派"));
    if (!me.signed_off) forms.push(FQ.formHtml("joint-sign", "本镇签字（全部参与乡镇签字后联合办结）",
      [["comment", "签字意见", "textarea", { required: true }]], "签字"));
  }
  const mine = j.tasks.filter((t) => !t.done && t.node === FQ.me.here);
  if (open && work && mine.length)
    forms.push(FQ.formHtml("joint-done", "完成本镇任务", [["task", "任务", "select", { options: mine.map((t) => [t.id, `${t.id} ${t.title}`]) }],
      ["result", "办理结果", "textarea", { required: true }]], "完成"));
  main.innerHTML = `<h2>三联：${FQ.esc(j.title)} <span class="badge" id="joint-status">${FQ.esc(FQ.JOINT_STATUS[j.status] || j.status)}</span>
    <span class="holder">牵头：${FQ.esc(FQ.name(j.lead_node))}</span></h2><div class="grid">
    <section class="card"><h3>参与乡镇</h3><table id="participants"><tbody>${j.participants.map((p) => `<tr><td>${FQ.esc(FQ.name(p.node))}</td>
      <td>${FQ.esc(FQ.PARTICIPANT[p.status] || p.status)}${p.reason ? "：" + FQ.esc(p.reason) : ""}</td>
      <td>${p.signed_off ? `已签字（${FQ.esc(p.signed_off_by)}）` : "未签字"}</td></tr>`).join("")}</tbody></table>
      <h3>专班成员</h3><ul>${j.members.map((m) => `<li>${FQ.esc(FQ.name(m.node))} · ${FQ.esc(m.name)}（${FQ.esc(m.unit)}，${FQ.esc(m.role)}）</li>`).join("") || '<li class="muted">暂无</li>'}</ul>
      <h3>任务</h3><table id="joint-tasks"><tbody>${j.tasks.map((t) => `<tr><td>${FQ.esc(t.id)}</td><td>${FQ.esc(FQ.name(t.node))}</td>
      <td>${FQ.esc(t.title)}</td><td>${FQ.time(t.deadline)}</td><td>${t.done ? "已完成：" + FQ.esc(t.result) : t.overdue ? '<span class="bad">已超期</span>' : "办理中"}</td></tr>`).join("")
      || '<tr><td class="muted">暂无</td></tr>'}</tbody></table></section>
    <section class="card"><h3>共享时间线</h3><ol class="timeline">${timeline.entries.map(FQ.jointEvent).join("")}</ol>
      <p class="muted">时间线哈希 ${FQ.esc(timeline.hash.slice(0, 16))}…（各参与方一致）</p></section>
    ${forms.join("")}</div>`;
  const act = (form, suffix, body) => FQ.bind(form, async (v) => {
    await FQ.post(path + suffix(v), body(v));
    FQ.route();
  });
  act("joint-answer", () => "/answer", (v) => {
    if (v.accept === "false" && !v.reason) throw new Error("拒绝时须写明理由");
    return { accept: v.accept === "true", reason: v.reason };
  });
  act("joint-note", () => "/notes", (v) => ({ text: v.text }));
  act("joint-member", () => "/members", (v) => ({ name: v.name, unit: v.unit, role: v.role, phone: v.phone }));
  act("joint-task", () => "/tasks", (v) => ({ node: v.node, title: v.title, deadline: FQ.isoOf(v.deadline) }));
  act("joint-sign", () => "/sign-off", (v) => ({ comment: v.comment }));
  act("joint-done", (v) => `/tasks/${encodeURIComponent(v.task)}/complete`, (v) => ({ result: v.result }));
};

/* ---------- 四必评 ---------- */

FQ.GATE_STATUS = { pending: "待评估", assessed: "已评估", blocked: "高风险暂停", passed: "已通过" };

FQ.views.projects = async (main) => {
  const page = await FQ.api("/api/v1/projects?page_size=200");
  const column = (stage) => page.items.filter((p) => (stage === "完成" ? p.status === "completed" : p.status !== "completed" && p.stage === stage));
  const card = (p) => {
    const gate = p.gates.find((g) => g.stage === p.stage) || {};
    const open = p.hazards.filter((h) => !h.resolved).length;
    return `<div class="pcard ${p.status === "suspended" ? "suspended" : ""}"><a href="#/project/${encodeURIComponent(p.id)}"><b>${FQ.esc(p.name)}</b></a>
      <span class="muted">${FQ.esc(p.kind)} · 涉及 ${p.people_affected} 人</span>
      <span class="badge ${gate.level || ""}">${FQ.esc(FQ.LEVELS[gate.level] || "待评估")}</span>
      ${p.status === "suspended" ? '<span class="badge high">高风险暂停</span>' : ""}
      <span class="muted">未销号隐患 ${open} 个 · 引发纠纷 ${p.cases.length} 件</span></div>`;
  };
  const villages = (FQ.nodes || []).filter((n) => n.tier === "TIER_VILLAGE" || n.code.length === 12).map((n) => [n.code, n.name]);
  main.innerHTML = `<h2>四必评看板（立项、决策、实施、验收）</h2>
    ${FQ.can("projects.manage") ? FQ.formHtml("project-form", "登记重大项目或重大决策", [
      ["name", "项目名称", "text", { required: true }],
      ["kind", "类别", "select", { options: ["征地", "拆迁", "产业园区", "政策调整", "其它"] }],
      ["people_affected", "涉及人数", "number", { value: "0", min: 0, required: true }],
      ["villages", "受影响村（社区）", "multi", { options: villages }], ["description", "项目概况", "textarea"],
    ], "登记") : ""}
    <div class="board">${[...FQ.STAGES, "完成"].map((s) => `<section class="lane"><h3>${s === "完成" ? "四评完成" : s + "评估"}</h3>
      ${column(s).map(card).join("") || '<p class="muted">暂无</p>'}</section>`).join("")}</div>`;
  FQ.bind("project-form", async (v) => {
    if (!v.villages.length) throw new Error("请选择受影响的村（社区）");
    const p = await FQ.post("/api/v1/projects", { name: v.name, kind: v.kind, description: v.description,
      villages: v.villages, people_affected: Number(v.people_affected) });
    location.hash = "#/project/" + encodeURIComponent(p.id);
  });
};

FQ.views.project = async (main, id) => {
  const path = `/api/v1/projects/${encodeURIComponent(id)}`;
  const p = await FQ.api(path);
  const manage = FQ.can("projects.manage") && p.status !== "completed";
  const gate = p.gates.find((g) => g.stage === p.stage) || {};
  const score = (name, label) => [name, label + "（0–100）", "number", { value: "80", min: 0, max: 100, required: true }];
  const forms = [];
  if (manage) {
    forms.push(FQ.formHtml("assess-form", `${p.stage}环节稳定风险评估`, [
      score("legality", "合法性"), score("reasonableness", "合理性"), score("feasibility", "可行性"), score("controllability", "可控性"),
      ["respondents", "民意调查：受访人数", "number", { value: "100", min: 0, required: true }],
      ["supporters", "其中支持人数", "number", { value: "90", min: 0, required: true }],
      ["risk", "风险点（可不填）", "text"], ["likelihood", "可能性（1–5）", "number", { value: "2", min: 1, max: 5 }],
      ["impact", "影响程度（1–5）", "number", { value: "2", min: 1, max: 5 }],
      ["measure", "化解措施（可不填）", "text"], ["unit", "责任单位", "text"], ["measure_deadline", "措施时限", "datetime"],
      ["assessor", "评估主体", "text", { value: FQ.me.here_name }], ["summary", "评估结论", "textarea"],
    ], "提交评估"));
    if (gate.status === "assessed") forms.push(`<form class="card act" id="pass-form" novalidate><h3>通过${FQ.esc(p.stage)}环节</h3>
      <p class="muted">评估为${FQ.esc(FQ.LEVELS[gate.level] || "")}，可通过本环节进入下一环节。</p>
      <div class="buttons"><button type="submit">通过${FQ.esc(p.stage)}环节</button><p class="error" role="alert"></p></div></form>`);
  }
  const consequence = p.status === "suspended" ? '<p class="notice bad">高风险：项目暂停推进，须落实化解措施后重新评估。</p>'
    : gate.level === "medium" ? '<p class="notice">中风险：可推进，化解措施须按时落实。</p>' : "";
  main.innerHTML = `<h2>四必评：${FQ.esc(p.name)} <span class="badge" id="project-stage">${FQ.esc(p.status === "completed" ? "四评完成" : p.stage + "环节")}</span>
    <span class="badge ${gate.level || ""}" id="project-level">${FQ.esc(FQ.LEVELS[gate.level] || "待评估")}</span></h2>${consequence}
    <div class="grid"><section class="card wide"><h3>各环节</h3><table id="gates"><thead><tr><th>环节</th><th>状态</th><th>风险</th><th>评估次数</th>
      <th>依据</th></tr></thead><tbody>${p.gates.map((g) => `<tr><td>${FQ.esc(g.stage)}</td><td>${FQ.esc(FQ.GATE_STATUS[g.status] || g.status)}</td>
      <td>${FQ.esc(FQ.LEVELS[g.level] || "—")}</td><td>${g.assessments}</td><td>${FQ.esc((g.latest?.reasons || []).join("；"))}</td></tr>`).join("")}</tbody></table>
      <h3>隐患</h3><table id="hazards"><tbody>${p.hazards.map((h) => `<tr data-hazard="${FQ.esc(h.id)}"><td>${FQ.esc(h.stage)}</td><td>${FQ.esc(h.description)}</td>
      <td>可能性 ${h.likelihood} · 影响 ${h.impact}</td><td>${h.resolved ? "已销号：" + FQ.esc(h.resolution) : manage
        ? '<form class="inline resolve"><input name="resolution" placeholder="如何化解" required><button type="submit">销号</button><span class="error"></span></form>' : "未销号"}</td></tr>`).join("")
      || '<tr><td class="muted">暂无隐患</td></tr>'}</tbody></table>
      <h3>化解措施</h3><ul>${p.measures.map((m) => `<li>${FQ.esc(m.description)}（${FQ.esc(m.responsible_unit)}，${FQ.time(m.deadline)}）${m.completed ? " ✔" : ""}</li>`).join("") || '<li class="muted">暂无</li>'}</ul>
      <h3>引发的纠纷</h3><ul>${p.cases.map((c) => `<li><a href="#/case/${encodeURIComponent(c.case_id)}">${FQ.esc(c.receipt_no)}</a> ${FQ.esc(c.category)}</li>`).join("") || '<li class="muted">暂无</li>'}</ul>
    </section>${forms.join("")}</div>`;
  FQ.bind("assess-form", async (v) => {
    const body = { stage: p.stage, assessor: v.assessor, summary: v.summary,
      dimensions: { legality: Number(v.legality), reasonableness: Number(v.reasonableness), feasibility: Number(v.feasibility),
        controllability: Number(v.controllability) },
      survey: { respondents: Number(v.respondents), supporters: Number(v.supporters) },
      risk_points: v.risk ? [{ description: v.risk, likelihood: Number(v.likelihood), impact: Number(v.impact) }] : [],
      measures: v.measure ? [{ description: v.measure, responsible_unit: v.unit, deadline: FQ.isoOf(v.measure_deadline) }] : [] };
    if (body.survey.supporters > body.survey.respondents) throw new Error("支持人数不能多于受访人数");
    if (v.measure && (!v.unit || !v.measure_deadline)) throw new Error("化解措施须写明责任单位和时限");
    await FQ.post(path + "/assess", body);
    FQ.route();
  });
  FQ.bind("pass-form", async () => {
    await FQ.post(path + "/pass", { stage: p.stage });
    FQ.route();
  });
  main.querySelectorAll("form.resolve").forEach((form) => form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await FQ.post(`${path}/hazards/${encodeURIComponent(form.closest("tr").dataset.hazard)}/resolve`,
        { resolution: form.elements.resolution.value.trim() });
      FQ.route();
    } catch (err) {
      form.querySelector(".error").textContent = err.message;
    }
  }));
};
