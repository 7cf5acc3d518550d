"""Open311 GeoReport v2 documents from cases: services, definitions and PII-free requests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from fengqiao.clock import CHINA_TZ
from fengqiao.security.privacy import redact_text
from fengqiao.topology import Topology
from fengqiao.v1 import case_pb2 as pb

GROUPS = {"治安隐患": "隐患", "安全隐患": "隐患", "环境污染": "隐患", "其它": "其它"}
CLOSED = {pb.CASE_STATUS_CLOSED, pb.CASE_STATUS_FOLLOWED_UP, pb.CASE_STATUS_ARCHIVED}
NOTES = {
    pb.CASE_STATUS_RECEIVED: "已受理，正在分类研判",
    pb.CASE_STATUS_TRIAGED: "已研判，待交办",
    pb.CASE_STATUS_ASSIGNED: "已交办承办部门，待签收",
    pb.CASE_STATUS_ACKNOWLEDGED: "承办部门已签收",
    pb.CASE_STATUS_IN_PROGRESS: "正在处置",
    pb.CASE_STATUS_FEEDBACK: "已反馈办理结果，待审核",
    pb.CASE_STATUS_REVIEWED: "审核通过，待办结",
    pb.CASE_STATUS_CLOSED: "已办结",
    pb.CASE_STATUS_FOLLOWED_UP: "已办结并回访",
    pb.CASE_STATUS_ARCHIVED: "已办结归档",
    pb.CASE_STATUS_ESCALATING: "已上报上级中心，待接收",
    pb.CASE_STATUS_RETURNED: "承办部门退单，中心重新交办中",
    pb.CASE_STATUS_REOPENED: "回访不满意，发回重办",
}


def definition(code: str) -> dict[str, Any]:
    """A service definition: the attributes a request of ``code`` may carry."""
    return {
        "service_code": code,
        "attributes": [
            {"variable": True, "code": "urgency", "datatype": "singlevaluelist", "required": False,
             "datatype_description": "一般或紧急", "order": 1, "description": "紧急程度",
             "values": [{"key": "routine", "name": "一般（24 小时内办理）"},
                        {"key": "urgent", "name": "紧急（2 小时内响应）"}]},
            {"variable": True, "code": "grid", "datatype": "string", "required": False,
             "datatype_description": "如 第2网格", "order": 2, "description": "所在网格"},
        ],
    }  # fmt: skip


def parse_time(text: str) -> dt.datetime:
    """A W3C datetime; without an offset it is read as China time."""
    moment = dt.datetime.fromisoformat(text.strip().replace(" ", "+"))
    return moment if moment.tzinfo else moment.replace(tzinfo=CHINA_TZ)


def _time(ts: Timestamp) -> str | None:
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToDatetime(tzinfo=dt.UTC).astimezone(CHINA_TZ).isoformat(timespec="seconds")


def _area(topology: Topology, code: str) -> str:
    if not topology.knows(code):
        return code
    return topology.node(code).name.removesuffix("综治中心").removesuffix("综治站")


def as_request(case: pb.Case, topology: Topology) -> dict[str, Any]:
    """The case as an Open311 service request, with no personal data."""
    holder = _area(topology, case.holder_node) + ("综治中心" if len(case.holder_node) < 12 else "综治站")
    department = case.assignment.department
    agency = f"{department}（{holder}）" if department and case.status not in CLOSED else holder
    notes = NOTES.get(case.status, "")
    if case.status in CLOSED and case.mediation_level:
        notes += f"（{case.mediation_level}）"
    lat, lng = case.location.latitude, case.location.longitude
    return {
        "service_request_id": case.receipt_no,
        "status": "closed" if case.status in CLOSED else "open",
        "status_notes": notes,
        "service_name": case.category,
        "service_code": case.category,
        "description": redact_text(case.description, [p.name for p in case.parties]),
        "agency_responsible": agency,
        "service_notice": "",
        "requested_datetime": _time(case.received_at),
        "updated_datetime": _time(case.updated_at),
        "expected_datetime": None if case.status in CLOSED else _time(case.deadline),
        "address": _area(topology, case.division_code),
        "address_id": case.division_code,
        "zipcode": None,
        "lat": round(lat, 2) if lat or lng else None,
        "long": round(lng, 2) if lat or lng else None,
        "media_url": None,
    }
