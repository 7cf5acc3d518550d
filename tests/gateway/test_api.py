"""The HTTP API over real servers: login, intake, closed-loop steps, filters, attachments, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from fengqiao.cases.vocabulary import DEFAULT_CATEGORIES
from harness.county import ADMIN_PASSWORD, LocalCounty

VILLAGE = "371702101001"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 32
CASE = {
    "client_request_id": "http-test-0001",
    "channel": "群众来访",
    "category": "房屋宅基地",
    "description": "东邻新建围墙越过宅基地界线约半米，双方争执。",
    "parties": [{"name": "王五", "phone": "13900001111", "role": "申请人"}],
    "location": {"address": "四组7号"},
}


@pytest.fixture
async def client(village: LocalCounty) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{village[VILLAGE].http_port}"
    async with httpx.AsyncClient(base_url=base) as anonymous:
        login = await anonymous.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        assert login.status_code == 200
        token = login.json()["access_token"]
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as authed:
        yield authed


async def test_wrong_password_and_missing_token_are_refused_in_chinese(village: LocalCounty) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{village[VILLAGE].http_port}") as anonymous:
        bad = await anonymous.post("/api/v1/auth/token", data={"username": "admin", "password": "nope"})
        assert bad.status_code == 401 and bad.json()["detail"] == "用户名或密码错误"
        assert (await anonymous.get("/api/v1/cases")).status_code == 401
        forged = await anonymous.get("/api/v1/cases", headers={"Authorization": "Bearer x.y.z"})
        assert forged.status_code == 401 and forged.json()["detail"] == "令牌无效"
        assert (await anonymous.get("/healthz")).json()["node"] == VILLAGE


async def test_a_case_is_taken_in_and_advanced_over_http_and_an_illegal_step_answers_409(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/api/v1/cases", json=CASE)
    assert created.status_code == 201, created.text
    case_id = created.json()["case"]["id"]
    again = await client.post("/api/v1/cases", json=CASE)
    assert again.json()["duplicate"] is True and again.json()["case"]["id"] == case_id

    triaged = await client.post(f"/api/v1/cases/{case_id}/triage", json={"category": "房屋宅基地", "response_class": 1})
    assert triaged.status_code == 200 and triaged.json()["status"] == "CASE_STATUS_TRIAGED"

    illegal = await client.post(f"/api/v1/cases/{case_id}/close", json={})
    assert illegal.status_code == 409
    assert "不能办结" in illegal.json()["detail"]
    stale = await client.post(
        f"/api/v1/cases/{case_id}/assign",
        json={"slip": {"department": "司法所", "requirement": "调解"}, "expected_version": 1},
    )
    assert stale.status_code == 409 and "已被他人更新" in stale.json()["detail"]
    unknown = await client.post(f"/api/v1/cases/{case_id}/teleport", json={})
    assert unknown.status_code == 404 and "未知的步骤" in unknown.json()["detail"]
    malformed = await client.post(f"/api/v1/cases/{case_id}/assign", json={"slip": {"department": 5}})
    assert malformed.status_code == 400 and "单据格式错误" in malformed.json()["detail"]

    events = (await client.get(f"/api/v1/cases/{case_id}/events")).json()["items"]
    assert [next(k for k in e if k in ("received", "triaged")) for e in events] == ["received", "triaged"]


async def test_malformed_intake_over_http_names_the_field(client: httpx.AsyncClient) -> None:
    bad_phone = {**CASE, "client_request_id": "http-test-0002", "parties": [{"name": "王五", "phone": "123"}]}
    reply = await client.post("/api/v1/cases", json=bad_phone)
    assert reply.status_code == 400 and "parties[0].phone" in reply.json()["detail"]
    missing = {k: v for k, v in CASE.items() if k != "category"}
    reply = await client.post("/api/v1/cases", json=missing)
    assert reply.status_code == 422 and reply.json()["detail"] == "请求格式错误。字段 category：必填"
    assert (await client.get("/api/v1/cases")).json()["items"] == []


async def test_case_lists_filter_by_category_and_channel(client: httpx.AsyncClient) -> None:
    for i, category in enumerate(["房屋宅基地", "邻里", "邻里"]):
        body = {**CASE, "client_request_id": f"http-filter-{i:04d}", "category": category}
        assert (await client.post("/api/v1/cases", json=body)).status_code == 201
    neighbours = (await client.get("/api/v1/cases", params={"category": "邻里"})).json()["items"]
    assert len(neighbours) == 2 and {c["category"] for c in neighbours} == {"邻里"}
    by_channel = (await client.get("/api/v1/cases", params={"channel": "电话热线"})).json()["items"]
    assert by_channel == []
    assert (await client.get("/api/v1/cases", params={"overdue": "true"})).json()["items"] == []
    bad = await client.get("/api/v1/cases", params={"response_class": "slow"})
    assert bad.status_code == 400


async def test_attachments_upload_and_download_by_hash(client: httpx.AsyncClient) -> None:
    up = await client.post("/api/v1/attachments", files={"file": ("现场.png", PNG, "image/png")})
    assert up.status_code == 201, up.text
    sha = up.json()["sha256"]
    down = await client.get(f"/api/v1/attachments/{sha}")
    assert down.status_code == 200 and down.content == PNG
    wrong = await client.post("/api/v1/attachments", files={"file": ("x.exe", b"MZ..", "application/x-msdownload")})
    assert wrong.status_code == 400 and "不支持的附件类型" in wrong.json()["detail"]


@pytest.fixture
def own_words(monkeypatch: pytest.MonkeyPatch) -> None:
    """A county that adds its own category (网络诈骗) and channel (微信小程序) to the node setting."""
    monkeypatch.setenv("FQ_CATEGORIES", ",".join([*DEFAULT_CATEGORIES, "网络诈骗"]))
    monkeypatch.setenv("FQ_CHANNELS", "群众来访,微信小程序")


async def test_the_vocabulary_is_the_nodes_own_with_the_names_of_the_centers_above(
    own_words: None, client: httpx.AsyncClient
) -> None:
    """The console's 受理 form offers what this node accepts, not a list of its own."""
    words = (await client.get("/api/v1/vocabulary")).json()
    assert words["categories"] == [*DEFAULT_CATEGORIES, "网络诈骗"]
    assert words["channels"] == ["群众来访", "微信小程序"]
    centers = [(c["code"], c["name"], c["tier"]) for c in words["centers"]]
    town, county = ("371702101", "测试1镇综治中心", 2), ("371702", "测试县综治中心", 1)
    assert centers == [(VILLAGE, "测试1镇1村综治站", 3), town, county]
    own = {**CASE, "client_request_id": "words-0001", "category": "网络诈骗", "channel": "微信小程序"}
    accepted = await client.post("/api/v1/cases", json=own)
    assert accepted.status_code == 201, accepted.text
    dropped = {**CASE, "client_request_id": "words-0002", "channel": "电话热线"}
    refused = await client.post("/api/v1/cases", json=dropped)
    assert refused.status_code == 400 and "未知的来源渠道“电话热线”" in refused.json()["detail"]
