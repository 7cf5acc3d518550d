"""A party's identity fields: the resident ID number (GB 11643) and the phone number.

Pure checks, shared by intake (which refuses a malformed party) and the demo's simulator (which
invents well-formed ones).
"""

from __future__ import annotations

import datetime as dt
import re

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_SHAPE = re.compile(r"^[1-9]\d{16}[\dX]$")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{2,3}-?\d{7,8}$")


def id_check_digit(first17: str) -> str:
    """The check digit for the first 17 digits of an ID number."""
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def id_number_problem(value: str) -> str | None:
    """Why ``value`` is not a valid 18-digit resident ID number (GB 11643), or None."""
    value = value.upper()
    if not _ID_SHAPE.match(value):
        return "应为18位（前17位数字，末位数字或X）"
    try:
        dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return "出生日期无效"
    if id_check_digit(value[:17]) != value[17]:
        return "校验位错误"
    return None


def is_valid_phone(value: str) -> bool:
    """A mainland mobile number (11 digits) or a landline with area code."""
    return bool(_MOBILE.match(value) or _LANDLINE.match(value))
