"""Well-formed requests for the tests."""

from __future__ import annotations

import uuid

from fengqiao.v1 import case_pb2, intake_pb2


def submit_request(division_code: str, **fields: object) -> intake_pb2.SubmitCaseRequest:
    """A valid 邻里 dispute taken in at ``division_code``; ``fields`` override."""
    values: dict[str, object] = {
        "client_request_id": f"test-{uuid.uuid4().hex}",
        "division_code": division_code,
        "grid": "第2网格",
        "channel": "网格员上报",
        "category": "邻里",
        "response_class": case_pb2.RESPONSE_CLASS_ROUTINE,
        "parties": [
            case_pb2.Party(name="张三", id_number="37170219850312004X", phone="13812345678", role="申请人"),
            case_pb2.Party(name="李四", role="被申请人"),
        ],
        "location": case_pb2.Location(address="三组12号", latitude=35.23, longitude=115.44),
        "description": "邻居房檐滴水落入申请人院内，双方多次争吵，请求村里调解。",
        "reporter": "网格员王芳",
    }
    values.update(fields)
    return intake_pb2.SubmitCaseRequest(**values)  # type: ignore[arg-type]
