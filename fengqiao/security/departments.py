"""Department scope: a 部门/调解员 account sees and acts on only the cases its department is
working on (pure rules; the gateway applies them to every case read and step).

A department works on a case when the case's current 交办单 names it, when 中心吹哨 called it, or
when it leads or holds a sub-task of the 攻坚专班. It may act only in its own name: the steps of
the current assignment (签收, 退单, 延期申请, 处置, 进展, 反馈) when the assignment is its own,
and 报到 or a sub-task when they are its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fengqiao.errors import PermissionDenied
from fengqiao.security.auth import Principal
from fengqiao.security.roles import Role
from fengqiao.v1 import case_pb2 as pb

# The steps taken on the current 交办单, in the name of the department it names.
ASSIGNMENT_STEPS = frozenset({"acknowledge", "return", "extension", "start", "progress", "feedback"})


def scoped(who: Principal) -> bool:
    """True when the caller sees only its department's cases (部门/调解员)."""
    return who.role == Role.MEDIATOR


def require_department(who: Principal) -> str:
    """The caller's department; refused when a 部门/调解员 account has none."""
    if not who.department:
        raise PermissionDenied(
            f"账号 {who.username}（部门/调解员）未设所属部门，不能查看或办理案件：请管理员设置所属部门后重新登录"
        )
    return who.department


def works_on(case: pb.Case, department: str) -> bool:
    """True when ``department`` is assigned to, called to, or tasked on ``case``."""
    return (
        case.assignment.department == department
        or case.lead_department == department
        or any(s.department == department for s in case.summons)
        or any(t.department == department for t in case.subtasks)
    )


def _assigned_to(case: pb.Case) -> str:
    return f"交办给{case.assignment.department}" if case.assignment.department else "未交办给本部门"


def check_read(who: Principal, case: pb.Case) -> None:
    """Refuse a 部门/调解员 a case its department does not work on."""
    if not scoped(who):
        return
    department = require_department(who)
    if not works_on(case, department):
        raise PermissionDenied(
            f"账号 {who.username}（{department}）只能查看和办理本部门承办的案件，"
            f"案件 {case.receipt_no or case.id} {_assigned_to(case)}"
        )


def acting_for(step: str, case: pb.Case, slip: Mapping[str, Any]) -> str | None:
    """The department in whose name ``step`` is taken on ``case`` (None: a step no department takes)."""
    if step in ASSIGNMENT_STEPS:
        return case.assignment.department
    if step == "report":
        return str(slip.get("department", ""))
    if step == "subtask-done":
        wanted = slip.get("subtask_id", "")
        return next((t.department for t in case.subtasks if t.id == wanted), "")
    return None


def check_step(who: Principal, step: str, case: pb.Case, slip: Mapping[str, Any]) -> None:
    """Refuse a 部门/调解员 a step on a case it may not see, or in another department's name."""
    if not scoped(who):
        return
    check_read(who, case)
    department = who.department
    named = slip.get("department")
    if step == "acknowledge" and named not in (None, "", department):
        raise PermissionDenied(f"账号 {who.username}（{department}）只能以本部门名义签收，不能代{named}签收")
    acting = acting_for(step, case, slip)
    if acting != department:
        raise PermissionDenied(
            f"账号 {who.username}（{department}）只能以本部门名义办理，不能代{acting or '其他部门'}办理"
        )
