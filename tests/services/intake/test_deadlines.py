"""The clock policy (pure): deadlines of the response classes, and when warnings and 督办 are due."""

from __future__ import annotations

import datetime as dt

import pytest

from fengqiao.errors import InvalidArgument
from fengqiao.v1 import case_pb2
from services.intake import deadlines
from services.intake.config import IntakeSettings

SETTINGS = IntakeSettings()
START = dt.datetime(2024, 5, 6, 8, 0, tzinfo=dt.UTC)
SHARE = SETTINGS.warn_share
HOUR = dt.timedelta(hours=1)


def open_case(
    *,
    hours: float = 24,
    status: int = case_pb2.CASE_STATUS_IN_PROGRESS,
    warned: bool = False,
    supervised: bool = False,
) -> case_pb2.Case:
    """A case whose clock started at START and ends ``hours`` later."""
    case = case_pb2.Case(id="case-1", status=status)  # type: ignore[arg-type]
    case.clock_start.FromDatetime(START)
    case.deadline.FromDatetime(START + dt.timedelta(hours=hours))
    if warned:
        case.warned_for.CopyFrom(case.deadline)
    if supervised:
        case.supervised_for.CopyFrom(case.deadline)
    return case


# Deadlines --------------------------------------------------------------------------------------


def test_the_default_settings_are_24_hours_2_hours_and_a_warning_at_80_percent() -> None:
    assert (SETTINGS.routine_hours, SETTINGS.urgent_hours, SETTINGS.warn_share) == (24.0, 2.0, 0.8)


def test_a_routine_case_has_24_hours() -> None:
    assert deadlines.deadline_for(case_pb2.RESPONSE_CLASS_ROUTINE, START, SETTINGS) == START + 24 * HOUR


def test_an_urgent_case_has_2_hours() -> None:
    assert deadlines.deadline_for(case_pb2.RESPONSE_CLASS_URGENT, START, SETTINGS) == START + 2 * HOUR


def test_the_class_clocks_ignore_a_given_deadline() -> None:
    given = START + 72 * HOUR
    assert deadlines.deadline_for(case_pb2.RESPONSE_CLASS_ROUTINE, START, SETTINGS, given=given) == START + 24 * HOUR
    assert deadlines.deadline_for(case_pb2.RESPONSE_CLASS_URGENT, START, SETTINGS, given=given) == START + 2 * HOUR


def test_a_task_force_takes_the_deadline_the_center_gives() -> None:
    given = START + dt.timedelta(days=15)
    assert deadlines.deadline_for(case_pb2.RESPONSE_CLASS_TASK_FORCE, START, SETTINGS, given=given) == given


def test_a_task_force_without_a_given_deadline_is_refused_naming_the_deadline() -> None:
    with pytest.raises(InvalidArgument) as caught:
        deadlines.deadline_for(case_pb2.RESPONSE_CLASS_TASK_FORCE, START, SETTINGS)
    assert caught.value.field == "deadline"
    assert "deadline" in caught.value.message


def test_the_class_clocks_follow_the_county_settings() -> None:
    county = IntakeSettings(routine_hours=48, urgent_hours=1)
    assert deadlines.deadline_for(case_pb2.RESPONSE_CLASS_ROUTINE, START, county) == START + 48 * HOUR
    assert deadlines.deadline_for(case_pb2.RESPONSE_CLASS_URGENT, START, county) == START + HOUR
    assert deadlines.intake_deadline(case_pb2.RESPONSE_CLASS_URGENT, START, county) == START + HOUR


@pytest.mark.parametrize(
    ("response_class", "hours"),
    [
        (case_pb2.RESPONSE_CLASS_URGENT, 2),
        (case_pb2.RESPONSE_CLASS_ROUTINE, 24),
        (case_pb2.RESPONSE_CLASS_TASK_FORCE, 24),  # provisional until triage sets the center's deadline
        (case_pb2.RESPONSE_CLASS_UNSPECIFIED, 24),
    ],
)
def test_the_intake_clock_is_2_hours_for_urgent_cases_and_24_hours_otherwise(response_class: int, hours: int) -> None:
    assert deadlines.intake_deadline(response_class, START, SETTINGS) == START + hours * HOUR


def test_the_warning_is_due_at_80_percent_of_the_clock() -> None:
    assert deadlines.warn_time(START, START + 24 * HOUR, 0.8) == START + dt.timedelta(hours=19, minutes=12)
    assert deadlines.warn_time(START, START + 2 * HOUR, SHARE) == START + dt.timedelta(minutes=96)
    assert deadlines.warn_time(START, START + 10 * HOUR, 0.5) == START + 5 * HOUR


# Alarms -----------------------------------------------------------------------------------------


def test_no_alarm_is_due_before_80_percent_of_the_clock() -> None:
    case = open_case()
    assert deadlines.due_alarms(case, START, SHARE) == []
    assert deadlines.due_alarms(case, START + dt.timedelta(hours=19, minutes=11), SHARE) == []


@pytest.mark.parametrize("after", [dt.timedelta(hours=19, minutes=12), 20 * HOUR, 24 * HOUR - dt.timedelta(seconds=1)])
def test_only_the_warning_is_due_between_80_percent_and_the_deadline(after: dt.timedelta) -> None:
    assert deadlines.due_alarms(open_case(), START + after, SHARE) == ["deadline_warning"]


@pytest.mark.parametrize("after", [24 * HOUR, 30 * HOUR, dt.timedelta(days=10)])
def test_both_alarms_are_due_at_or_after_the_deadline_when_neither_was_raised(after: dt.timedelta) -> None:
    assert deadlines.due_alarms(open_case(), START + after, SHARE) == ["deadline_warning", "supervision"]


def test_only_supervision_is_due_after_the_deadline_once_the_warning_was_raised() -> None:
    case = open_case(warned=True)
    assert deadlines.due_alarms(case, START + 20 * HOUR, SHARE) == []
    assert deadlines.due_alarms(case, START + 24 * HOUR, SHARE) == ["supervision"]


def test_nothing_is_due_once_both_alarms_were_raised_for_the_deadline() -> None:
    case = open_case(warned=True, supervised=True)
    assert deadlines.due_alarms(case, START + 24 * HOUR, SHARE) == []
    assert deadlines.due_alarms(case, START + dt.timedelta(days=30), SHARE) == []


@pytest.mark.parametrize(
    "status", [case_pb2.CASE_STATUS_CLOSED, case_pb2.CASE_STATUS_FOLLOWED_UP, case_pb2.CASE_STATUS_ARCHIVED]
)
def test_nothing_is_due_for_a_closed_case(status: int) -> None:
    assert deadlines.due_alarms(open_case(status=status), START + 48 * HOUR, SHARE) == []


@pytest.mark.parametrize(
    "status",
    [
        case_pb2.CASE_STATUS_RECEIVED,
        case_pb2.CASE_STATUS_TRIAGED,
        case_pb2.CASE_STATUS_ASSIGNED,
        case_pb2.CASE_STATUS_RETURNED,
        case_pb2.CASE_STATUS_REOPENED,
    ],
)
def test_alarms_are_due_for_every_open_case(status: int) -> None:
    assert deadlines.due_alarms(open_case(status=status), START + 48 * HOUR, SHARE) == [
        "deadline_warning",
        "supervision",
    ]


def test_nothing_is_due_for_a_case_without_a_deadline() -> None:
    case = open_case()
    case.ClearField("deadline")
    assert deadlines.due_alarms(case, START + dt.timedelta(days=365), SHARE) == []


def test_a_moved_deadline_owes_a_warning_again_even_if_the_old_one_had_both_alarms() -> None:
    case = open_case(hours=24, warned=True, supervised=True)  # both raised for the old deadline
    case.deadline.FromDatetime(START + 48 * HOUR)  # extension granted; raised-for still names the old one
    assert deadlines.due_alarms(case, START + 30 * HOUR, SHARE) == []  # before 80% of the new clock (38.4 h)
    assert deadlines.due_alarms(case, START + 39 * HOUR, SHARE) == ["deadline_warning"]
    assert deadlines.due_alarms(case, START + 48 * HOUR, SHARE) == ["deadline_warning", "supervision"]
    case.warned_for.CopyFrom(case.deadline)
    assert deadlines.due_alarms(case, START + 48 * HOUR, SHARE) == ["supervision"]


def test_the_warning_share_is_the_one_given() -> None:
    case = open_case(hours=10)
    assert deadlines.due_alarms(case, START + 4 * HOUR, 0.5) == []
    assert deadlines.due_alarms(case, START + 5 * HOUR, 0.5) == ["deadline_warning"]


def test_alarms_are_due_alike_whatever_the_time_zone_of_now() -> None:
    case = open_case()
    beijing = dt.timezone(dt.timedelta(hours=8))
    assert deadlines.due_alarms(case, (START + 20 * HOUR).astimezone(beijing), SHARE) == ["deadline_warning"]


# 督办 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "supervisor"),
    [
        ("371702101001", "371702101"),  # village → town
        ("371702101", "371702"),  # town → county
        ("371702", "371702"),  # the county supervises itself
    ],
)
def test_supervision_goes_to_the_tier_above(node: str, supervisor: str) -> None:
    assert deadlines.supervisor_of(node) == supervisor


def test_supervisor_of_refuses_a_code_that_is_not_a_division() -> None:
    with pytest.raises(InvalidArgument):
        deadlines.supervisor_of("3717")


def test_nothing_is_due_while_the_case_awaits_the_tier_above() -> None:
    case = open_case()
    case.status = case_pb2.CASE_STATUS_ESCALATING
    assert deadlines.due_alarms(case, START + dt.timedelta(days=3), SHARE) == []
