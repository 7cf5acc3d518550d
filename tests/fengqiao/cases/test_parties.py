"""A party's identity fields: resident ID numbers (GB 11643) and phone numbers."""

from __future__ import annotations

import pytest

from fengqiao.cases.parties import id_check_digit, id_number_problem, is_valid_phone


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
