"""Open311 GeoReport v2 at a running village: discovery, services, definitions, a request that
becomes a case through intake, lists with the spec's filters, paging and update times, status
from the lifecycle, no personal data, a metadata-free thumbnail behind media_url, every method
and error in XML as the spec's examples show them, and in JSON."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from devtools.natsserver import NatsServer
from fengqiao.cases.vocabulary import DEFAULT_CATEGORIES
from harness.county import ADMIN_PASSWORD, LocalCounty, small_county
from tests.gateway.open311_spec import as_strings, check_document, parse_w3c, spark

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


def xml_of(reply: httpx.Response, kind: str) -> ET.Element:
    """The document, checked against the structure of the spec's example for ``kind``."""
    assert reply.headers["content-type"] == "text/xml; charset=utf-8"
    assert reply.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    root = ET.fromstring(reply.content)
    check_document(root, kind)
    return root


async def test_every_method_answers_in_xml_as_the_specs_examples_show_and_as_its_json_says(
    client: httpx.AsyncClient,
) -> None:
    for path, kind in (
        ("/open311/v2/discovery", "discovery"),
        ("/open311/v2/services", "services"),
        ("/open311/v2/services/邻里", "definition"),
    ):
        as_xml = xml_of(await client.get(f"{path}.xml"), kind)
        as_json = (await client.get(f"{path}.json")).json()
        assert spark(as_xml) == as_strings(as_json), path

    created = await client.post("/open311/v2/requests.xml", data=REQUEST)
    assert created.status_code == 200, created.text
    receipt = xml_of(created, "created").findtext("request/service_request_id")
    assert receipt is not None and receipt.startswith(f"{VILLAGE}-")
    await client.post("/open311/v2/requests.json", data={**REQUEST, "service_code": "物业"})

    listed = xml_of(await client.get("/open311/v2/requests.xml"), "requests")
    assert spark(listed) == as_strings((await client.get("/open311/v2/requests.json")).json())
    assert [r.findtext("service_code") for r in listed] == ["物业", "邻里"]  # newest first
    one = xml_of(await client.get(f"/open311/v2/requests/{receipt}.xml"), "requests")
    assert one.findtext("request/status") == "open" and one.find("request/zipcode") is not None
    assert one.findtext("request/zipcode") == "" and one.findtext("request/lat") == "35.23"  # null: <zipcode />

    refused = await client.post("/open311/v2/requests.xml", data={**REQUEST, "api_key": "wrong-key-0000000000"})
    assert refused.status_code == 403
    assert spark(xml_of(refused, "errors")) == [{"code": "403", "description": "api_key 无效或缺失"}]
    missing = await client.get("/open311/v2/services/火星.xml")
    assert missing.status_code == 404 and "没有服务" in (xml_of(missing, "errors").findtext("error/description") or "")
    unknown = await client.get(f"/open311/v2/requests/{VILLAGE}-20200101-0001.xml")
    assert unknown.status_code == 404 and xml_of(unknown, "errors").findtext("error/code") == "404"
    other = await client.get("/open311/v2/services.csv")
    assert other.status_code == 404 and ".xml" in other.json()[0]["description"]


async def test_requests_page_with_page_and_page_size_and_filter_by_update_time(client: httpx.AsyncClient) -> None:
    for _ in range(7):
        assert (await client.post("/open311/v2/requests.json", data=REQUEST)).status_code == 200
    everything = [r["service_request_id"] for r in (await client.get("/open311/v2/requests.json")).json()]
    pages = []
    for page in (1, 2, 3, 4):
        reply = await client.get("/open311/v2/requests.json", params={"page": page, "page_size": 3})
        pages.append([r["service_request_id"] for r in reply.json()])
    assert [len(p) for p in pages] == [3, 3, 1, 0] and [i for p in pages for i in p] == everything
    default_size = await client.get("/open311/v2/requests.json", params={"page": 1})
    assert len(default_size.json()) == 7  # 100 a page unless told
    in_xml = xml_of(await client.get("/open311/v2/requests.xml", params={"page": 2, "page_size": 5}), "requests")
    assert [r.findtext("service_request_id") for r in in_xml] == everything[5:]

    for bad in ({"page": 0}, {"page_size": "many"}, {"page_size": 1001}, {"page": 100, "page_size": 1000}):
        refused = await client.get("/open311/v2/requests.json", params=bad)
        assert refused.status_code == 400 and refused.json()[0]["code"] == 400, bad
    refused = await client.get("/open311/v2/requests.xml", params={"page": -1})
    assert refused.status_code == 400 and xml_of(refused, "errors").findtext("error/code") == "400"

    updated = [parse_w3c(r["updated_datetime"]) for r in (await client.get("/open311/v2/requests.json")).json()]
    earliest, latest = min(updated), max(updated)
    since = await client.get("/open311/v2/requests.json", params={"updated_after": earliest.isoformat()})
    assert len(since.json()) == 7
    later = latest + dt.timedelta(seconds=1)
    assert (await client.get("/open311/v2/requests.json", params={"updated_after": later.isoformat()})).json() == []
    before = earliest - dt.timedelta(seconds=1)
    assert (await client.get("/open311/v2/requests.json", params={"updated_before": before.isoformat()})).json() == []
    window = {"updated_after": earliest.isoformat(), "updated_before": latest.isoformat(), "page_size": 2}
    assert len((await client.get("/open311/v2/requests.json", params=window)).json()) == 2
    garbled = await client.get("/open311/v2/requests.json", params={"updated_after": "last week"})
    assert garbled.status_code == 400 and "updated_after" in garbled.json()[0]["description"]


def photo_with_exif() -> bytes:
    """A 1600×1200 JPEG whose EXIF names a camera, a time, a GPS position and a comment."""
    image = Image.new("RGB", (1600, 1200), (200, 120, 40))
    exif = Image.Exif()
    exif[0x010F] = "Huawei"  # Make
    exif[0x0132] = "2026:11:22 08:00:00"  # DateTime
    exif[0x9286] = "张三家门口"  # UserComment
    exif[0x8825] = {1: "N", 2: (35.0, 14.0, 4.0), 3: "E", 4: (115.0, 26.0, 35.0)}  # GPS
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, comment=b"13812345678")
    return out.getvalue()


async def test_media_url_shows_a_small_thumbnail_of_the_cases_photo_without_its_metadata(
    client: httpx.AsyncClient,
) -> None:
    receipt = (await client.post("/open311/v2/requests.json", data=REQUEST)).json()[0]["service_request_id"]
    before = (await client.get(f"/open311/v2/requests/{receipt}.json")).json()[0]
    assert before["media_url"] is None
    original = photo_with_exif()
    assert Image.open(io.BytesIO(original)).getexif()[0x010F] == "Huawei"

    async with httpx.AsyncClient(base_url=str(client.base_url)) as operator:
        login = await operator.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        operator.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        uploaded = await operator.post(
            "/api/v1/attachments", files={"file": ("现场.jpg", original, "image/jpeg")}, data={"filename": "现场.jpg"}
        )
        assert uploaded.status_code == 201, uploaded.text
        case_id = (await operator.get(f"/api/v1/cases/{receipt}")).json()["id"]
        for step, body in (
            ("triage", {"category": "邻里", "response_class": 2}),
            ("assign", {"slip": {"department": "司法所", "requirement": "调解"}}),
            ("acknowledge", {"department": "司法所"}),
            ("start", {}),
            ("feedback", {"slip": {"result": "柴草已移走", "photos": [uploaded.json()["sha256"]]}}),
        ):
            reply = await operator.post(f"/api/v1/cases/{case_id}/{step}", json=body)
            assert reply.status_code == 200, (step, reply.text)

    request = (await client.get(f"/open311/v2/requests/{receipt}.json")).json()[0]
    assert request["media_url"] == f"{client.base_url}/open311/v2/media/{receipt}.jpg"
    assert (
        xml_of(await client.get(f"/open311/v2/requests/{receipt}.xml"), "requests").findtext("request/media_url")
        == request["media_url"]
    )
    async with httpx.AsyncClient() as anyone:  # public: no key, no login
        picture = await anyone.get(request["media_url"])
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg"
    thumb = Image.open(io.BytesIO(picture.content))
    assert thumb.format == "JPEG" and max(thumb.size) == 480 and thumb.size == (480, 360)
    assert not thumb.getexif() and not set(thumb.info) & {"exif", "icc_profile", "xmp", "comment"}
    assert b"Huawei" not in picture.content and b"13812345678" not in picture.content
    assert thumb.getpixel((240, 180)) == pytest.approx((200, 120, 40), abs=3)

    none = await client.get(f"/open311/v2/media/{VILLAGE}-20200101-0001.jpg")
    assert none.status_code == 404 and none.json()[0]["code"] == 404
