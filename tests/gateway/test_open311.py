"""Open311 GeoReport v2 at a running village: discovery, services, definitions, a request that
becomes a case through intake, lists with the spec's filters, status from the lifecycle, no
personal data, errors in the spec's format."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from devtools.natsserver import NatsServer
from fengqiao.cases.vocabulary import DEFAULT_CATEGORIES
from harness.county import ADMIN_PASSWORD, LocalCounty, small_county

VILLAGE = "371702101001"
KEY = "open311-test-key-0123456789"
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
REQUEST = {
    "api_key": KEY,
    "jurisdiction_id": VILLAGE,
    "service_code": "邻里",
    "lat": "35.23456",
    "long": "115.44321",
    "address_string": "三组12号",
    "description": "张三家的柴草堆在路上，多次协商无果，张三电话13812345678。",
    "last_name": "张",
    "first_name": "三",
    "phone": "13812345678",
    "attribute[urgency]": "urgent",
    "attribute[grid]": "第2网格",
}


@contextlib.asynccontextmanager
async def open311_at_village(
    tmp_path: Path, nats_url: str, database_url: Callable[[str], str], **settings: object
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the village's Open311 endpoints, the village running with ``settings``."""
    local = LocalCounty(small_county(towns=1, villages=1), tmp_path / "county", nats_url, database_url)
    await local.start(VILLAGE, open311_api_key=KEY, **settings)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{local[VILLAGE].http_port}") as c:
            yield c
    finally:
        await local.stop()


@pytest.fixture
async def client(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str]
) -> AsyncIterator[httpx.AsyncClient]:
    async with open311_at_village(tmp_path, nats_server.url, database_url) as c:
        yield c


async def test_discovery_services_and_definitions_follow_the_spec(client: httpx.AsyncClient) -> None:
    discovery = (await client.get("/open311/v2/discovery.json")).json()
    assert discovery["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert discovery["endpoints"][0]["url"].endswith("/open311/v2")
    services = (await client.get("/open311/v2/services.json", params={"jurisdiction_id": VILLAGE})).json()
    assert {"service_code": "邻里", "service_name": "邻里", "metadata": True, "type": "realtime"}.items() <= next(
        s for s in services if s["service_code"] == "邻里"
    ).items()
    assert len(services) == 17
    definition = (await client.get("/open311/v2/services/邻里.json")).json()
    assert [a["code"] for a in definition["attributes"]] == ["urgency", "grid"]
    missing = await client.get("/open311/v2/services/火星.json")
    assert (
        missing.status_code == 404
        and missing.json()[0]["code"] == 404
        and "没有服务" in missing.json()[0]["description"]
    )
    elsewhere = await client.get("/open311/v2/services.json", params={"jurisdiction_id": "371702102001"})
    assert elsewhere.status_code == 404 and "jurisdiction_id" in elsewhere.json()[0]["description"]


async def test_a_category_the_county_added_is_a_service_and_a_request_under_it_becomes_a_case(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str]
) -> None:
    categories = (*DEFAULT_CATEGORIES, "网络诈骗")
    async with open311_at_village(tmp_path, nats_server.url, database_url, categories=categories) as client:
        services = (await client.get("/open311/v2/services.json")).json()
        assert [s["service_code"] for s in services] == list(categories)
        assert (await client.get("/open311/v2/services/网络诈骗.json")).status_code == 200
        created = await client.post("/open311/v2/requests.json", data={**REQUEST, "service_code": "网络诈骗"})
        assert created.status_code == 200, created.text
        receipt = created.json()[0]["service_request_id"]
        one = (await client.get(f"/open311/v2/requests/{receipt}.json")).json()
        assert one[0]["service_code"] == "网络诈骗"


async def test_a_request_needs_a_key_becomes_a_case_and_shows_no_personal_data(client: httpx.AsyncClient) -> None:
    refused = await client.post("/open311/v2/requests.json", data={**REQUEST, "api_key": "wrong-key-0000000000"})
    assert refused.status_code == 403 and refused.json() == [{"code": 403, "description": "api_key 无效或缺失"}]
    bad = await client.post("/open311/v2/requests.json", data={**REQUEST, "service_code": "火星"})
    assert bad.status_code == 400 and "service_code" in bad.json()[0]["description"]
    bad_phone = await client.post("/open311/v2/requests.json", data={**REQUEST, "phone": "123"})
    assert bad_phone.status_code == 400 and "电话" in bad_phone.json()[0]["description"]

    created = await client.post("/open311/v2/requests.json", data=REQUEST)
    assert created.status_code == 200, created.text
    receipt = created.json()[0]["service_request_id"]
    assert receipt.startswith(f"{VILLAGE}-") and "2 小时" in created.json()[0]["service_notice"]

    one = (await client.get(f"/open311/v2/requests/{receipt}.json")).json()
    assert len(one) == 1
    request = one[0]
    assert request["status"] == "open" and request["status_notes"] == "已受理，正在分类研判"
    assert request["service_code"] == "邻里" and request["agency_responsible"] == "测试1镇1村综治站"
    assert request["expected_datetime"] is not None and request["expected_datetime"].endswith("+08:00")
    assert request["lat"] == 35.23 and request["long"] == 115.44 and request["address"] == "测试1镇1村"
    text = str(one)
    assert "13812345678" not in text and "三组12号" not in text and "张三" not in text
    assert "张*家的柴草" in request["description"] and "138****5678" in request["description"]

    # Operators see the case taken in through the one window, with its parties.
    async with httpx.AsyncClient(base_url=str(client.base_url)) as operator:
        login = await operator.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        operator.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        case = (await operator.get(f"/api/v1/cases/{receipt}")).json()
        assert case["channel"] == "12345转办" and case["response_class"] == "RESPONSE_CLASS_URGENT"
        assert case["parties"][0]["phone"] == "13812345678" and case["grid"] == "第2网格"
        case_id = case["id"]
        steps = [
            ("triage", {"category": "邻里", "response_class": 2}),
            ("assign", {"slip": {"department": "司法所", "requirement": "调解"}}),
            ("acknowledge", {"department": "司法所"}),
            ("start", {}),
            (
                "feedback",
                {"slip": {"result": "已调解，柴草移走", "mediated": True, "mediation_level": "网格员现场调解"}},
            ),
            ("review", {"approved": True}),
            ("close", {"summary": "调解成功", "mediation_level": "网格员现场调解"}),
        ]
        for step, body in steps:
            if step == "review":
                open_now = (await client.get(f"/open311/v2/requests/{receipt}.json")).json()[0]
                assert open_now["agency_responsible"] == "司法所（测试1镇1村综治站）"
            reply = await operator.post(f"/api/v1/cases/{case_id}/{step}", json=body)
            assert reply.status_code == 200, (step, reply.text)

    closed = (await client.get(f"/open311/v2/requests/{receipt}.json")).json()[0]
    assert closed["status"] == "closed" and closed["status_notes"].startswith("已办结")
    assert closed["expected_datetime"] is None


async def test_request_lists_filter_by_id_code_status_and_dates(client: httpx.AsyncClient) -> None:
    receipts = []
    for code in ("邻里", "邻里", "物业"):
        reply = await client.post("/open311/v2/requests.json", data={**REQUEST, "service_code": code})
        receipts.append(reply.json()[0]["service_request_id"])
    everything = (await client.get("/open311/v2/requests.json")).json()
    assert {r["service_request_id"] for r in everything} == set(receipts)
    neighbours = (await client.get("/open311/v2/requests.json", params={"service_code": "邻里"})).json()
    assert len(neighbours) == 2
    by_id = (
        await client.get("/open311/v2/requests.json", params={"service_request_id": ",".join(receipts[:2])})
    ).json()
    assert [r["service_request_id"] for r in by_id] == receipts[:2]
    assert (await client.get("/open311/v2/requests.json", params={"status": "closed"})).json() == []
    assert len((await client.get("/open311/v2/requests.json", params={"status": "open,closed"})).json()) == 3
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    assert (await client.get("/open311/v2/requests.json", params={"start_date": tomorrow})).json() == []
    long_ago = "2020-01-01T00:00:00+08:00"
    too_long = await client.get("/open311/v2/requests.json", params={"start_date": long_ago, "end_date": tomorrow})
    assert too_long.status_code == 400 and "90 天" in too_long.json()[0]["description"]
    garbled = await client.get("/open311/v2/requests.json", params={"end_date": "yesterday"})
    assert garbled.status_code == 400 and garbled.json()[0]["code"] == 400
    unknown = await client.get("/open311/v2/requests/371702101001-20200101-0001.json")
    assert unknown.status_code == 404 and unknown.json()[0]["code"] == 404
