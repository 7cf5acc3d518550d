/* 枫桥操作台：表单（字段、校验、附件上传、提交与服务器的中文答复）。 */
"use strict";

/* 一个字段：[名称, 标签, 类型, 选项]；类型 text、textarea、select、datetime、number、check、files、multi。 */
FQ.field = ([name, label, type = "text", opts = {}]) => {
  const req = opts.required ? " required" : "";
  const tip = opts.placeholder ? ` placeholder="${FQ.esc(opts.placeholder)}"` : "";
  const choices = (opts.options || []).map((o) => (Array.isArray(o) ? o : [o, o]));
  let input;
  if (type === "textarea") input = `<textarea name="${name}" rows="3"${req}${tip}>${FQ.esc(opts.value || "")}</textarea>`;
  else if (type === "select") input = `<select name="${name}"${req}>${choices.map(([v, l]) =>
    `<option value="${FQ.esc(v)}"${v === opts.value ? " selected" : ""}>${FQ.esc(l)}</option>`).join("")}</select>`;
  else if (type === "multi") input = `<span class="multi">${choices.map(([v, l]) =>
    `<label class="check"><input type="checkbox" name="${name}" value="${FQ.esc(v)}">${FQ.esc(l)}</label>`).join("")}</span>`;
  else if (type === "check") input = `<input type="checkbox" name="${name}" value="true"${opts.value ? " checked" : ""}>`;
  else if (type === "files") input = `<input type="file" name="${name}" multiple accept="image/jpeg,image/png,application/pdf">`;
  else if (type === "password") input = `<input type="password" name="${name}" autocomplete="new-password"${req}>`;
  else if (type === "datetime") input = `<input type="datetime-local" name="${name}"${req}>`;
  else if (type === "number") input = `<input type="number" name="${name}" value="${FQ.esc(opts.value ?? "")}"${req}`
    + `${opts.min !== undefined ? ` min="${opts.min}"` : ""}${opts.max !== undefined ? ` max="${opts.max}"` : ""}>`;
  else input = `<input name="${name}" value="${FQ.esc(opts.value || "")}"${req}${tip}>`;
  return `<label class="f-${type}${type === "check" ? " check" : ""}"><span>${FQ.esc(label)}</span>${input}</label>`;
};

/* 北京时间的 datetime-local 值 → RFC 3339（+08:00）。 */
FQ.isoOf = (local) => (local ? local + ":00+08:00" : undefined);

/* 上传附件（照片、签字材料），返回 sha256。 */
FQ.upload = async (file) => {
  const body = new FormData();
  body.append("file", file);
  body.append("filename", file.name);
  const ref = await FQ.api("/api/v1/attachments", { method: "POST", body });
  return ref.sha256;
};

/* 表单的值：多选与附件为数组（附件先上传），勾选为布尔。 */
FQ.valuesOf = async (form) => {
  const values = {};
  for (const element of form.elements) {
    if (!element.name) continue;
    if (element.type === "file") values[element.name] = await Promise.all([...element.files].map(FQ.upload));
    else if (element.type === "checkbox" && element.closest(".multi")) {
      values[element.name] = values[element.name] || [];
      if (element.checked) values[element.name].push(element.value);
    } else if (element.type === "checkbox") values[element.name] = element.checked;
    else values[element.name] = element.value.trim();
  }
  return values;
};

/* 一张表单：标题、字段、提交按钮与错误提示；submit(values) 抛出的错误原样（中文）显示。 */
FQ.formHtml = (id, title, fields, button, extra = "") => `<form class="card act" id="${id}" novalidate>
  <h3>${FQ.esc(title)}</h3><div class="fields">${fields.map(FQ.field).join("")}</div>${extra}
  <div class="buttons"><button type="submit">${FQ.esc(button)}</button><p class="error" role="alert"></p></div></form>`;

FQ.bind = (id, submit, check = () => []) => {
  const form = document.getElementById(id);
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = form.querySelector(".error");
    const button = form.querySelector("button[type=submit]");
    error.textContent = "";
    const missing = [...form.querySelectorAll("[required]")].filter((e) => !e.value.trim())
      .map((e) => e.closest("label").querySelector("span").textContent);
    const problems = [...missing.map((m) => m + "必填"), ...check(form)];
    if (problems.length) {
      error.textContent = problems.join("；");
      return;
    }
    button.disabled = true;
    try {
      await submit(await FQ.valuesOf(form), form);
    } catch (err) {
      error.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  });
};

/* 身份证号（GB 11643：18 位，末位校验码）与电话（手机 11 位或带区号的固话）。 */
FQ.idProblem = (value) => {
  if (!value) return "";
  if (!/^\d{17}[\dXx]$/.test(value)) return "身份证号应为 18 位（末位可为 X）";
  const weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  const sum = weights.reduce((acc, w, i) => acc + w * Number(value[i]), 0);
  return "10X98765432"[sum % 11] === value[17].toUpperCase() ? "" : "身份证号校验位不符，请核对";
};
FQ.phoneProblem = (value) =>
  !value || /^1[3-9]\d{9}$/.test(value) || /^0\d{2,3}-?\d{7,8}$/.test(value) ? ""
    : "电话应为 11 位手机号或带区号的固定电话";
