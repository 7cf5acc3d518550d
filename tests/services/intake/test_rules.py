from __future__ import annotations

import pytest

from fengqiao.cases.vocabulary import Vocabulary
from fengqiao.errors import InvalidArgument
from fengqiao.v1 import case_pb2, intake_pb2
from harness.county import small_county, submit_request
from services.intake.config import IntakeSettings
from services.intake.rules import receipt_day, receipt_no, validate_submit

VILLAGE = "371702101001"
TOPOLOGY = small_county()


def validate(request: intake_pb2.SubmitCaseRequest, vocabulary: Vocabulary | None = None) -> None:
    """Intake's validation at the village, with the shared vocabulary unless one is given."""
    validate_submit(
        request, node_code=VILLAGE, topology=TOPOLOGY, vocabulary=vocabulary or Vocabulary(), settings=IntakeSettings()
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"category": ""}, "category"),
        ({"category": "外星人"}, "category"),
        ({"channel": ""}, "channel"),
        ({"channel": "飞鸽传书"}, "channel"),
        ({"division_code": "371799101001"}, "division_code"),
        ({"division_code": "371702102001"}, "division_code"),
        ({"division_code": "12345"}, "division_code"),
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
        validate(request)
    assert caught.value.field == field
    assert field in caught.value.message


def test_well_formed_intake_passes() -> None:
    validate(submit_request(VILLAGE))


def test_a_category_the_county_added_is_taken_in_and_an_unknown_one_is_refused() -> None:
    county = Vocabulary(categories=(*Vocabulary().categories, "网络诈骗"))
    request = submit_request(VILLAGE, category="网络诈骗")
    validate(request, county)
    with pytest.raises(InvalidArgument, match="未知的案件类别“网络诈骗”"):
        validate(request)


def test_receipt_numbers_follow_the_local_calendar() -> None:
    import datetime as dt

    late_evening_utc = dt.datetime(2026, 11, 22, 17, 30, tzinfo=dt.UTC)  # 01:30 on the 23rd in China
    assert receipt_day(late_evening_utc) == "20261123"
    assert receipt_no(VILLAGE, "20261123", 7) == "371702101001-20261123-0007"
