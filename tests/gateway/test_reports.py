"""Reports over HTTP at a running county: figures, 红黑榜, alerts, the signed provincial feed
(schema, signature, no personal data, published on NATS) and the 月报 in CSV and XLSX."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re

import httpx
import jsonschema
import nats
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from nats.aio.msg import Msg
from openpyxl import load_workbook

from fengqiao.grpcutil import channel
from fengqiao.v1 import federation_pb2, federation_pb2_grpc
from harness.county import ADMIN_PASSWORD, LocalCounty
from services.federation import feed
from services.federation.handlers import feed_subject
from tests.services.federation.live import COUNTY, Driven, county_has_everything, drive, this_month

ID_NUMBER = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")
PHONE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")


def personal_data_in(text: str, driven: Driven) -> list[str]:
    """Names, ID numbers, phones, descriptions and addresses of the parties found in ``text``."""
    found = ID_NUMBER.findall(text) + PHONE.findall(text)
    for request in driven.requests:
        for party in request.parties:
            found += [v for v in (party.name, party.id_number, party.phone) if v and v in text]
        found += [v for v in (request.description, request.location.address, request.reporter) if v and v in text]
    return found


async def test_reports_feed_and_monthly_report_over_http(county: LocalCounty) -> None:
    driven = await drive(county)
    await county_has_everything(county, driven)
    month = this_month()
    base = f"http://127.0.0.1:{county[COUNTY].http_port}"
    async with httpx.AsyncClient(base_url=base) as client:
        login = await client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"

        stats = (await client.get(f"/api/v1/nodes/{COUNTY}/stats", params={"period": month, "children": True})).json()
        assert int(stats["received"]) == 14 and len(stats["children"]) == 2
        assert stats["closure_rate"] == {"numerator": "10", "denominator": "14", "value": 10 / 14}
        assert stats["stale"] is False
        assert stats["categories"] == []  # counted only where asked for
        by_category = await client.get(f"/api/v1/nodes/{COUNTY}/stats", params={"period": month, "categories": True})
        assert by_category.json()["categories"] == [{"category": "邻里", "received": "14"}]
        town = await client.get("/api/v1/nodes/371702101/stats", params={"period": month, "categories": True})
        assert town.json()["categories"] == [{"category": "邻里", "received": "7"}]

        reply = await client.get("/api/v1/feed/provincial", params={"period": month})
        assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
        document = json.loads(reply.content)
        jsonschema.validate(document, feed.load_schema())
        key = (await client.get("/api/v1/feed/provincial/key")).json()
        public = load_pem_public_key(key["public_key_pem"].encode())
        assert isinstance(public, Ed25519PublicKey) and key["key_id"] == document["key_id"]
        assert feed.verify(document, public)
        tampered = {**document, "figures": {**document["figures"], "received": 13}}
        assert not feed.verify(tampered, public)
        assert document["figures"]["received"] == 14 and len(document["towns"]) == 2
        assert personal_data_in(reply.content.decode("utf-8"), driven) == []
        assert personal_data_in("张三 13812345678", driven)  # the scan does find what it looks for

        departments = (await client.get("/api/v1/rankings/departments", params={"period": month})).json()
        assert {s["department"] for s in departments["items"]} == {"司法所", "派出所", "妇联", "自然资源所"}
        assert all(s["rank"] == 0 for s in departments["items"])  # 4 or fewer assignments each: unranked
        workers = (await client.get("/api/v1/rankings/grid-workers", params={"period": month})).json()
        assert workers["total"] == 4 and {int(s["reports"]) for s in workers["items"]} == {3}
        assert sorted(s["rank"] for s in workers["items"]) == [1, 1, 1, 1]  # identical records tie
        alerts = (await client.get("/api/v1/alerts")).json()
        # 14 邻里 cases today after an empty month: the county and both towns (7 each) rise far above
        # their baselines; each village's 3 are below the minimum count.
        assert {(a["area"], a["category"], int(a["observed"])) for a in alerts["items"]} == {
            (COUNTY, "邻里", 14),
            ("371702101", "邻里", 7),
            ("371702102", "邻里", 7),
        }

        text = (await client.get("/api/v1/reports/monthly", params={"period": month, "format": "csv"})).content
        assert text.startswith(b"\xef\xbb\xbf")
        table = list(csv.reader(io.StringIO(text.decode("utf-8-sig"))))
        header = table[2]
        assert header[:6] == ["序号", "行政区划代码", "单位", "层级", "受理数", "办结数"]
        total = next(row for row in table if len(row) > 2 and row[2].startswith("合计"))
        assert total[4:7] == ["14", "10", "71.4%"]
        assert personal_data_in(text.decode("utf-8-sig"), driven) == []
        book = (await client.get("/api/v1/reports/monthly", params={"period": month, "format": "xlsx"})).content
        sheet = load_workbook(io.BytesIO(book)).active
        assert sheet is not None
        rows = [[c.value for c in row] for row in sheet.iter_rows()]
        assert rows[2][:5] == ["序号", "行政区划代码", "单位", "层级", "受理数"]
        xlsx_total = next(r for r in rows if isinstance(r[2], str) and r[2].startswith("合计"))
        assert xlsx_total[4:7] == [14, 10, 10 / 14]
        bad = await client.get("/api/v1/reports/monthly", params={"period": "2026-13", "format": "csv"})
        assert bad.status_code == 400 and "统计周期" in bad.json()["detail"]

    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    nc = await nats.connect(county.nats_url)
    try:

        async def on_feed(msg: Msg) -> None:
            if not received.done():
                received.set_result(msg.data)

        await nc.subscribe(feed_subject(COUNTY), cb=on_feed)
        async with channel(county[COUNTY].grpc_address) as ch:
            published = await federation_pb2_grpc.FederationStub(ch).PublishProvincialFeed(
                federation_pb2.FeedRequest(period=month)
            )
        data = await asyncio.wait_for(received, 5)
    finally:
        await nc.close()
    assert published.subject == "fq.371702._._.feed.provincial" and published.sequence >= 1
    assert feed.verify(json.loads(data), public)
