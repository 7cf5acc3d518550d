"""Operator roles and what each may read and do — the one place they are defined (docs/ARCHITECTURE.md, *Security*).

Every role is also scoped to its node and what lies below it; that check is separate
(``gateway.deps.require_scope``). A role says *what*, the scope says *where*.
"""

from __future__ import annotations

import enum


class Permission(enum.StrEnum):
    """One thing an operator may do; each HTTP endpoint needs exactly one."""

    CASES_READ = "cases.read"  # 案件列表、详情、时间线、附件
    CASES_SUBMIT = "cases.submit"  # 受理
    ATTACHMENTS_UPLOAD = "attachments.upload"  # 上传照片、签字材料
    CASES_HANDLE = "cases.handle"  # 签收、退单、延期申请、处置、反馈、部门报到、专班子任务
    CASES_DIRECT = "cases.direct"  # 研判、交办、派单、吹哨、审核、办结、回访、归档、上报与接收
    PII_READ = "pii.read"  # 案件详情中的当事人身份证号、电话
    PII_IN_LISTS = "pii.in_lists"  # 列表中不打码
    FIGURES_READ = "figures.read"  # 统计、排行、预警、节点与链路、省级上报、月报
    DEPARTMENTS_READ = "departments.read"  # 本中心部门
    DIRECTIVES = "directives"  # 上下级指令：查看、下达、签收、办结
    JOINT_READ = "joint.read"  # 三联案件与联防预警：查看
    JOINT_WORK = "joint.work"  # 三联：工作记录、完成任务
    JOINT_MANAGE = "joint.manage"  # 三联：发起、应邀、成员、分派任务、签字；联防预警
    PROJECTS_READ = "projects.read"  # 四必评：查看
    PROJECTS_MANAGE = "projects.manage"  # 四必评：登记、评估、过关、措施、隐患、关联纠纷
    USERS_MANAGE = "users.manage"  # 操作员账号


P = Permission
PERMISSION_LABELS: dict[Permission, str] = {
    P.CASES_READ: "查看案件",
    P.CASES_SUBMIT: "受理案件",
    P.ATTACHMENTS_UPLOAD: "上传附件",
    P.CASES_HANDLE: "办理案件（签收、处置、反馈）",
    P.CASES_DIRECT: "研判、交办、审核、办结、上报案件",
    P.PII_READ: "查看当事人个人信息",
    P.PII_IN_LISTS: "在列表中查看当事人个人信息",
    P.FIGURES_READ: "查看统计与报表",
    P.DEPARTMENTS_READ: "查看部门",
    P.DIRECTIVES: "处理上下级指令",
    P.JOINT_READ: "查看三联案件与联防预警",
    P.JOINT_WORK: "参与三联专班工作",
    P.JOINT_MANAGE: "发起和管理三联案件、联防预警",
    P.PROJECTS_READ: "查看四必评项目",
    P.PROJECTS_MANAGE: "管理四必评项目",
    P.USERS_MANAGE: "管理操作员账号",
}
_HANDLER = {
    P.CASES_READ, P.CASES_HANDLE, P.ATTACHMENTS_UPLOAD, P.PII_READ, P.FIGURES_READ, P.DEPARTMENTS_READ,
    P.JOINT_READ, P.JOINT_WORK,
}  # fmt: skip
_DUTY = _HANDLER | {
    P.CASES_SUBMIT, P.CASES_DIRECT, P.DIRECTIVES, P.JOINT_MANAGE, P.PROJECTS_READ, P.PROJECTS_MANAGE,
}  # fmt: skip


class Role(enum.StrEnum):
    """The five operator roles; the value is the code name stored with the account."""

    GRID_WORKER = "grid_worker"
    MEDIATOR = "mediator"
    DUTY_OFFICER = "duty_officer"
    COUNTY_ADMIN = "county_admin"
    PROVINCE_READONLY = "province_readonly"

    @property
    def label(self) -> str:
        """The role's Chinese name, as operators know it."""
        return LABELS[self]

    @property
    def permissions(self) -> frozenset[Permission]:
        return GRANTS[self]


LABELS: dict[Role, str] = {
    Role.GRID_WORKER: "网格员",
    Role.MEDIATOR: "部门/调解员",
    Role.DUTY_OFFICER: "中心值班员",
    Role.COUNTY_ADMIN: "县级管理员",
    Role.PROVINCE_READONLY: "省级只读",
}

GRANTS: dict[Role, frozenset[Permission]] = {
    # Grid workers report and follow first-level matters of their own grid and village.
    Role.GRID_WORKER: frozenset({P.CASES_READ, P.CASES_SUBMIT, P.ATTACHMENTS_UPLOAD, P.PII_READ, P.FIGURES_READ}),
    # Departments and mediators handle what they are assigned: sign, return, act, feed back.
    Role.MEDIATOR: frozenset(_HANDLER),
    # The center's duty officer runs the window: triage, assign, review, close, escalate.
    Role.DUTY_OFFICER: frozenset(_DUTY),
    # The administrator may do everything within the node's subtree, and manage accounts.
    Role.COUNTY_ADMIN: frozenset(Permission),
    # The province reads figures and the PII-free feed only: no cases, no personal data.
    Role.PROVINCE_READONLY: frozenset({P.FIGURES_READ}),
}

# The permission each closed-loop step of ``POST /api/v1/cases/{id}/{step}`` needs.
STEP_PERMISSIONS: dict[str, Permission] = {
    **dict.fromkeys(
        ("acknowledge", "return", "extension", "start", "progress", "feedback", "report", "subtask-done"),
        P.CASES_HANDLE,
    ),
    **dict.fromkeys(
        ("triage", "assign", "extension-decision", "review", "close", "follow-up", "archive", "escalate",
         "accept-escalation", "refuse-escalation", "dispatch", "whistle", "task-force"),
        P.CASES_DIRECT,
    ),
}  # fmt: skip


def role_of(code: str) -> Role | None:
    """The role named ``code``, or None for an unknown (or retired) role name."""
    try:
        return Role(code)
    except ValueError:
        return None


def allows(role: str, permission: Permission) -> bool:
    """True when an account of role ``role`` holds ``permission`` (unknown roles hold nothing)."""
    known = role_of(role)
    return known is not None and permission in known.permissions
