"""Masking: what a case list (and a detail without ``pii.read``) shows of a case."""

from __future__ import annotations

import pytest

from fengqiao.security.privacy import cut_address, mask_case, mask_event


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("山东省菏泽市牡丹区王浩屯镇前王村3组12号", "山东省菏泽市牡丹区王浩屯镇前王村***"),
        ("牡丹区东城街道丹阳社区阳光小区5号楼2单元", "牡丹区东城街道丹阳社区***"),
        ("牡丹区东城街道丹阳路88号", "牡丹区东城街道***"),
        ("人民路88号3单元", "***"),
        ("王浩屯镇前王村", "王浩屯镇前王村"),
        ("", ""),
    ],
)
def test_an_address_is_cut_to_its_village_or_community(address: str, shown: str) -> None:
    assert cut_address(address) == shown


def test_a_masked_case_keeps_its_ids_and_hashes_and_masks_every_free_text() -> None:
    sha = "13912345678" + "a" * 53  # a hash that happens to hold a phone-like run of digits
    case = {
        "id": "c1",
        "receipt_no": "371702101-20261202-0001",
        "attachments": [sha],
        "description": "张三（13912345678）与李四争执，李四身份证 37170219850312004X",
        "assignment": {"department": "司法所", "requirement": "联系张三 0530-5551234"},
        "parties": [{"name": "张三", "phone": "13912345678", "id_number": "", "role": "申请人"}, {"name": "李四"}],
        "location": {"address": "王浩屯镇前王村3组12号", "latitude": 35.234567, "longitude": 115.445678},
    }
    masked = mask_case(case)
    assert masked["id"] == "c1" and masked["receipt_no"] == case["receipt_no"] and masked["attachments"] == [sha]
    assert masked["description"] == "张*（139****5678）与李*争执，李*身份证 371702********004X"
    assert masked["assignment"] == {"department": "司法所", "requirement": "联系张* 053****1234"}
    assert masked["location"] == {"address": "王浩屯镇前王村***", "latitude": 35.23, "longitude": 115.45}
    assert [p["name"] for p in masked["parties"]] == ["张*", "李*"]


def test_a_masked_event_masks_its_slip_and_the_case_it_carries() -> None:
    progress = {"id": "e2", "case_id": "c1", "progress": {"note": "已电话联系张三 13912345678"}}
    assert mask_event(progress, ["张三"])["progress"] == {"note": "已电话联系张* 139****5678"}
    received = {"id": "e1", "received": {"case": {"parties": [{"name": "王五"}], "description": "王五报称"}}}
    assert mask_event(received)["received"]["case"]["description"] == "王*报称"
