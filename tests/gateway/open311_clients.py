"""Run by ``test_open311_clients.py`` in its own virtualenv (never imported by the project):
third-party Open311 clients from PyPI against a running node, the results printed as JSON.

- ``georeport`` (the GeoReport v2 wrapper) lists services and requests and reads one, in XML
  and in JSON; it can neither page nor create.
- ``chicagorequests`` (Chicago's Open311 downloader) pages through requests with ``page`` and
  ``page_size``, 200 at a time, as it does against Chicago.
- ``civicbot`` (its Open311 client) checks a request against the service list, then creates
  it. (Not against the definition: it fetches ``services/<code>.json`` with urllib, which cannot
  put the Chinese service code in a URL unencoded.)

Arguments: the endpoint URL (``…/open311/v2``), the jurisdiction, an api_key, a service code.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

from chicagorequests import Downloader
from civicbot import Endpoint, HttpTransport, Open311Client
from civicbot.http import RateLimiter
from georeport import GeoReport


def main() -> None:
    base, jurisdiction, api_key, service = sys.argv[1:5]
    result: dict[str, object] = {}

    endpoint = Endpoint(id="fengqiao", name="Fengqiao", base_url=base, write=True)
    creator = Open311Client(
        endpoint, transport=HttpTransport(rate_limiter=RateLimiter(min_interval=0)), jurisdiction_id=jurisdiction
    )
    prepared = creator.create_request(
        service,
        dry_run=False,
        confirm="SEND",
        api_key=api_key,
        known_services=creator.list_services(),
        lat=35.23,
        lng=115.44,
        description="第三方客户端提交：路边柴草堆影响通行。",
        first_name="三",
        last_name="张",
    )
    result["created"] = prepared.response

    created_id = prepared.response[0]["service_request_id"]
    for fmt in ("xml", "json"):
        client = GeoReport(base, jurisdiction=jurisdiction, output_format=fmt)
        result[fmt] = {
            "services": client.get_service_list(),
            "requests": client.get_service_requests(),
            "one": client.get_service_request(created_id),
        }

    now = dt.datetime.now(dt.UTC)
    downloader = Downloader()
    downloader.BASE_URL = f"{base}/requests.json"
    result["paged"] = downloader((now - dt.timedelta(days=1), now + dt.timedelta(minutes=5)))
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
