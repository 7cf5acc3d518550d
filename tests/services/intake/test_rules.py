from __future__ import annotations

import pytest

from fengqiao.errors import InvalidArgument
from fengqiao.v1 import case_pb2
from harness.county import small_county, submit_request
from services.intake.config import IntakeSettings
from services.intake.rules import (
    id_check_digit,
    id_number_problem,
    is_valid_phone,
    receipt_day,
    receipt_no,
    validate_submit,
)

VILLAGE = "371702101001"
TOPOLOGY = small_county()


def test_id_number_with_correct_check_digit_is_accepted() -> None:
    first17 = "37170219850312004"
    assert id_number_problem(first17 + id_check_digit(first17)) is None
    assert id_number_problem((first17 + id_check_digit(first17)).lower()) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("371702198503120041", "校验位"),
        ("37170219851312004X", "出生日期"),
        ("3717021985031200", "18位"),
        ("07170219850312004X", "18位"),
    ],
)
def test_bad_id_numbers_say_what_is_wrong(value: str, problem: str) -> None:
    assert problem in (id_number_problem(value) or "")


@pytest.mark.parametrize("phone", ["13812345678", "0530-5321234", "053012345678"])
def test_mobile_and_landline_numbers_are_valid(phone: str) -> None:
    assert is_valid_phone(phone)


@pytest.mark.parametrize("phone", ["1381234567", "23812345678", "12345", "138-1234-5678"])
def test_malformed_phone_numbers_are_invalid(phone: str) -> None:
    assert not is_valid_phone(phone)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"category": ""}, "category"),
        ({"category": "外星人"}, "category"),
        ({"channel": ""}, "channel"),
        ({"division_code": "371799101001"}, "division_code"),
        ({"division_code": "371702102001"}, "division_code"),
        ({"division_code": "12345"}, "division_code"),
        ({"description": "字" * 2001}, "description"),
        ({"description": "  "}, "description"),
        ({"client_request_id": ""}, "client_request_id"),
        ({"parties": [case_pb2.Party(name="张三", phone="1381234")]}, "parties[0].phone"),
        ({"parties": [case_pb2.Party(name="张三", id_number="371702198503120041")]}, "parties[0].id_number"),
        ({"parties": [case_pb2.Party(name="")]}, "parties[0].name"),
        ({"location": case_pb2.Location(latitude=91)}, "location"),
    ],
)
def test_malformed_intake_is_refused_naming_the_field(fields: dict[str, object], field: str) -> None:
    request = submit_request(VILLAGE)
    for name, value in fields.items():
        request.ClearField(name)  # type: ignore[arg-type]
        if isinstance(value, list):
            getattr(request, name).extend(value)
        elif isinstance(value, str):
            setattr(request, name, value)
        else:
            getattr(request, name).CopyFrom(value)
    with pytest.raises(InvalidArgument) as caught:
        validate_submit(request, node_code=VILLAGE, topology=TOPOLOGY, settings=IntakeSettings())
    assert caught.value.field == field
    assert field in caught.value.message


def test_well_formed_intake_passes() -> None:
    validate_submit(submit_request(VILLAGE), node_code=VILLAGE, topology=TOPOLOGY, settings=IntakeSettings())


def test_receipt_numbers_follow_the_local_calendar() -> None:
    import datetime as dt

    late_evening_utc = dt.datetime(2026, 11, 22, 17, 30, tzinfo=dt.UTC)  # 01:30 on the 23rd in China
    assert receipt_day(late_evening_utc) == "20261123"
    assert receipt_no(VILLAGE, "20261123", 7) == "371702101001-20261123-0007"
