"""Department scope, as pure rules: which cases a department works on, and in whose name a step is."""

from __future__ import annotations

import pytest

from fengqiao.errors import PermissionDenied
from fengqiao.security import departments
from fengqiao.security.auth import Principal
from fengqiao.v1 import case_pb2 as pb

SIFA = Principal("sifa", "mediator", "371702101", "司法所")


def _case() -> pb.Case:
    case = pb.Case(id="c1", receipt_no="R1")
    case.assignment.department = "派出所"
    case.summons.add(department="市监所")
    case.subtasks.add(id="t1", department="司法所", task="调解")
    return case


def test_a_department_works_on_what_it_is_assigned_called_or_tasked_with() -> None:
    case = _case()
    assert all(departments.works_on(case, d) for d in ("派出所", "市监所", "司法所"))
    assert not departments.works_on(case, "城管")


def test_a_department_acts_only_in_its_own_name() -> None:
    case = _case()
    departments.check_step(SIFA, "subtask-done", case, {"subtask_id": "t1"})
    for step, slip in (("acknowledge", {}), ("feedback", {}), ("report", {"department": "市监所"}),
                       ("subtask-done", {"subtask_id": "nope"})):  # fmt: skip
        with pytest.raises(PermissionDenied):
            departments.check_step(SIFA, step, case, slip)
    departments.check_step(Principal("duty", "duty_officer", "371702101"), "acknowledge", case, {})  # not scoped


def test_a_mediator_without_a_department_sees_nothing() -> None:
    with pytest.raises(PermissionDenied, match="未设所属部门"):
        departments.check_read(Principal("old", "mediator", "371702101"), _case())
