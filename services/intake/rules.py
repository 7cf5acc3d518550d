"""Intake rules (pure): what a well-formed case looks like, and 受理编号.

Every refusal names the field and says in Chinese what is wrong. How long a text field may be is
not decided here: ``fengqiao/limits.py`` is the one place for that, applied at every gRPC server
before a handler runs.
"""

from __future__ import annotations

import datetime as dt
import re

from fengqiao.cases.parties import id_number_problem, is_valid_phone
from fengqiao.cases.vocabulary import Vocabulary
from fengqiao.clock import CHINA_TZ
from fengqiao.divisions import is_within, tier_of
from fengqiao.errors import InvalidArgument
from fengqiao.topology import Topology
from fengqiao.v1 import case_pb2, intake_pb2
from services.intake.config import IntakeSettings

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{8,80}$")


def _require_text(value: str, field: str) -> None:
    if not value.strip():
        raise InvalidArgument(field, "不能为空")


def validate_submit(
    request: intake_pb2.SubmitCaseRequest,
    *,
    node_code: str,
    topology: Topology,
    vocabulary: Vocabulary,
    settings: IntakeSettings,
) -> None:
    """Refuse a malformed intake with ``InvalidArgument`` naming the field."""
    if not _REQUEST_ID.match(request.client_request_id):
        raise InvalidArgument("client_request_id", "请求编号必填，8–80位字母、数字或 ._:-")
    code = request.division_code or node_code
    tier_of(code)
    if not topology.knows(code):
        raise InvalidArgument("division_code", f"行政区划代码 {code} 不在本县拓扑中")
    if not is_within(code, node_code):
        raise InvalidArgument("division_code", f"行政区划代码 {code} 不属于本中心辖区（{node_code}）")
    vocabulary.check_category(request.category)
    vocabulary.check_channel(request.channel)
    _require_text(request.description, "description")
    lat, lng = request.location.latitude, request.location.longitude
    if (lat or lng) and not (-90 <= lat <= 90 and -180 <= lng <= 180):
        raise InvalidArgument("location", "经纬度超出范围")
    if len(request.parties) > settings.max_parties:
        raise InvalidArgument("parties", f"当事人不能超过 {settings.max_parties} 人")
    for i, party in enumerate(request.parties):
        _require_text(party.name, f"parties[{i}].name")
        if party.id_number and (problem := id_number_problem(party.id_number)):
            raise InvalidArgument(f"parties[{i}].id_number", f"身份证号格式不正确：{problem}")
        if party.phone and not is_valid_phone(party.phone):
            raise InvalidArgument(f"parties[{i}].phone", "电话号码格式不正确（手机11位或带区号的座机）")


def receipt_day(now: dt.datetime) -> str:
    """The local (China) calendar day a receipt number is counted in, as YYYYMMDD."""
    return now.astimezone(CHINA_TZ).strftime("%Y%m%d")


def receipt_no(node_code: str, day: str, seq: int) -> str:
    """受理编号: node code, local day and the day's sequence, e.g. 371702101001-20261122-0007."""
    return f"{node_code}-{day}-{seq:04d}"


def new_case(request: intake_pb2.SubmitCaseRequest, *, node_code: str, receipt: str) -> case_pb2.Case:
    """The intake data of a validated request, as the ``received`` event carries it."""
    return case_pb2.Case(
        receipt_no=receipt,
        origin_node=node_code,
        division_code=request.division_code or node_code,
        grid=request.grid,
        channel=request.channel,
        category=request.category,
        response_class=request.response_class or case_pb2.RESPONSE_CLASS_ROUTINE,
        parties=[
            case_pb2.Party(name=p.name, id_number=p.id_number.upper(), phone=p.phone, role=p.role)
            for p in request.parties
        ],
        location=request.location,
        description=request.description,
        client_request_id=request.client_request_id,
        reporter=request.reporter,
    )
