"""At a running sample county (real nats-server, nodes and databases), the county's figures and
each town's agree with the figures computed independently from the raw events."""

from __future__ import annotations

import datetime as dt

from bench.recompute import expected, observed
from fengqiao.grpcutil import channel
from fengqiao.v1 import federation_pb2, federation_pb2_grpc
from harness.county import LocalCounty
from services.federation import rules
from tests.services.federation.live import COUNTY, county_has_everything, drive, this_month


async def test_county_figures_agree_with_a_recompute_from_the_raw_events(county: LocalCounty) -> None:
    driven = await drive(county)
    logs = await county_has_everything(county, driven)
    period = this_month()
    async with channel(county[COUNTY].grpc_address) as ch:
        stats = await federation_pb2_grpc.FederationStub(ch).GetNodeStats(
            federation_pb2.GetNodeStatsRequest(code=COUNTY, period=period, include_children=True)
        )
    now = stats.generated_at.ToDatetime(tzinfo=dt.UTC)
    raw = list(logs.values())
    assert observed(stats) == expected(raw, COUNTY, rules.parse_period(period), now=now)
    assert stats.received == 14 and stats.closed == 10 and stats.follow_up_rate.numerator == 8
    assert stats.resolved_at_village.numerator == 8 and stats.resolved_at_or_below_town.numerator == 10
    assert stats.escalated == 2 and stats.satisfaction.value == 4.5
    assert not stats.stale and list(stats.stale_nodes) == []
    towns = {t.code: t for t in stats.children}
    assert set(towns) == {"371702101", "371702102"}
    for code, town in towns.items():
        assert observed(town) == expected(raw, code, rules.parse_period(period), now=now), code
        assert {v.code for v in town.children} == {f"{code}001", f"{code}002"}
        assert sum(v.received for v in town.children) == town.received == 7
