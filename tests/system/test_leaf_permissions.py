"""Each child's leaf connection is its own user at its parent's server (mTLS, named by its
certificate), allowed only its own subtree: a village cannot publish as its town or a sibling,
nor read a sibling's subjects — and sourcing still works both ways."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from fengqiao import natsconfig as render
from fengqiao.divisions import (
    case_subject,
    down_stream,
    event_subject,
    events_stream,
    own_case_subjects,
    own_up_subjects,
    subtree_subjects,
)
from fengqiao.grpcutil import channel
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import routing_pb2, routing_pb2_grpc
from harness.county import LeafCounty, small_county
from tests.services.routing.test_escalation import wait_holder
from tests.system.leaf_support import COUNTY, TOWN, VILLAGE, node_links, sourced_messages, submit
from tests.system.test_county_sync import eventually

SIBLING = f"{TOWN}002"


@contextlib.asynccontextmanager
async def tls_county(tmp_path: Path) -> AsyncIterator[LeafCounty]:
    """One town with two villages, every leaf link mTLS with per-child permissions, nodes started."""
    local = await LeafCounty.create(
        small_county(towns=1, villages=2),
        tmp_path / "county",
        lambda code: f"sqlite:///{tmp_path / f'{code}.db'}",
        tls=True,
    )
    try:
        await local.start()
        yield local
    finally:
        await local.close()


@contextlib.asynccontextmanager
async def client(local: LeafCounty, code: str) -> AsyncIterator[Client]:
    """A client of ``code``'s own server, as the node's services are."""
    nc = await nats.connect(local.client_url(code))
    try:
        yield nc
    finally:
        await nc.close()


class Inbox:
    """Subjects of the messages a subscription received, and a bounded wait for one."""

    def __init__(self) -> None:
        self.subjects: list[str] = []
        self.messages: list[tuple[str, bytes]] = []
        self._arrived = asyncio.Event()

    async def add(self, msg: Msg) -> None:
        self.subjects.append(msg.subject)
        self.messages.append((msg.subject, msg.data))
        self._arrived.set()

    async def wait_for(self, subject: str, within_s: float = 10.0) -> None:
        async with asyncio.timeout(within_s):
            while subject not in self.subjects:
                self._arrived.clear()
                await self._arrived.wait()


async def delivered(inbox: Inbox, nc: Client, subject: str, within_s: float = 10.0) -> None:
    """Publish ``subject`` from ``nc`` until ``inbox`` has it: the subscriptions behind ``inbox``
    have crossed the leaf links (interest propagates asynchronously)."""
    async with asyncio.timeout(within_s):
        while subject not in inbox.subjects:
            await nc.publish(subject, b"{}")
            with contextlib.suppress(TimeoutError):
                await inbox.wait_for(subject, within_s=0.2)


async def held(local: LeafCounty, code: str, subjects: str) -> int:
    """Messages on ``subjects`` in ``code``'s events stream."""
    js = local[code].ctx.js  # type: ignore[union-attr]
    info = await js.stream_info(events_stream(code), subjects_filter=subjects)
    return sum((info.state.subjects or {}).values())


def probe(code: str, name: str) -> str:
    """A subject in ``code``'s subtree that no stream captures (kind ``probe``)."""
    return event_subject(code, "probe", name)


def test_each_child_is_its_own_user_at_its_parent_allowed_only_its_subtree() -> None:
    topology = small_county(towns=1, villages=2)
    town = render.server_config(topology, TOWN, state_dir=Path("/s"), tls_dir=Path("/tls"))
    users = {u["user"]: u for u in town["authorization"]["users"]}
    assert set(users) == {render.LOCAL_USER, render.leaf_user(VILLAGE), render.leaf_user(SIBLING)}
    assert town["no_auth_user"] == render.LOCAL_USER and town["leafnodes"]["tls"]["verify_and_map"] is True
    assert users[render.LOCAL_USER]["allowed_connection_types"] == ["STANDARD"]
    village = users[render.leaf_user(VILLAGE)]
    assert village["allowed_connection_types"] == ["LEAFNODE"]
    fq = [s for s in village["permissions"]["publish"] if s.startswith("fq.")]
    assert fq == [subtree_subjects(VILLAGE)]
    assert f"$JS.fq{SIBLING}.API.>" not in village["permissions"]["subscribe"]
    # Without certificates there is no identity to give a permission to: the links stay open.
    assert "authorization" not in render.server_config(topology, TOWN, state_dir=Path("/s"))


async def test_a_village_cannot_publish_as_its_town_or_a_sibling(tmp_path: Path) -> None:
    async with tls_county(tmp_path) as local, client(local, TOWN) as town, client(local, VILLAGE) as village:
        seen = Inbox()
        for subjects in (own_up_subjects(TOWN)[0], subtree_subjects(SIBLING), subtree_subjects(VILLAGE)):
            await town.subscribe(subjects, cb=seen.add)
        await town.flush()
        await delivered(seen, village, probe(VILLAGE, "ready"))
        before = await held(local, TOWN, own_case_subjects(TOWN)), await held(local, TOWN, subtree_subjects(SIBLING))
        as_town, as_sibling = case_subject(TOWN, "forged"), case_subject(SIBLING, "forged")
        for subject in (as_town, as_sibling):
            await village.publish(subject, b"{}")
        await delivered(seen, village, probe(VILLAGE, "after"))  # the village's own subject: the control
        assert as_town not in seen.subjects and as_sibling not in seen.subjects
        # Neither landed in the town's events stream, which captures the town's own subjects.
        after = await held(local, TOWN, own_case_subjects(TOWN)), await held(local, TOWN, subtree_subjects(SIBLING))
        assert after == before


async def test_a_village_cannot_read_a_siblings_subjects(tmp_path: Path) -> None:
    async with (
        tls_county(tmp_path) as local,
        client(local, TOWN) as town,
        client(local, VILLAGE) as village,
        client(local, SIBLING) as sibling,
    ):
        at_town, at_village = Inbox(), Inbox()
        await town.subscribe(subtree_subjects(SIBLING), cb=at_town.add)
        await village.subscribe(subtree_subjects(SIBLING), cb=at_village.add)
        await village.subscribe(subtree_subjects(VILLAGE), cb=at_village.add)
        await village.flush()
        await delivered(at_village, town, probe(VILLAGE, "ready"))
        theirs = probe(SIBLING, "news")
        await delivered(at_town, sibling, theirs)  # the town sees its villages' subjects
        await delivered(at_village, town, probe(VILLAGE, "after"))  # after it, over the same link
        assert theirs not in at_village.subjects


async def test_sourcing_crosses_the_permitted_links_both_ways_and_link_states_are_read(tmp_path: Path) -> None:
    async with tls_county(tmp_path) as local:
        case = await submit(local, VILLAGE)
        await eventually(
            lambda: _sourced(local, COUNTY, VILLAGE), within_s=15, what="the village's events at the county"
        )
        async with channel(local[VILLAGE].grpc_address) as ch:
            await routing_pb2_grpc.RoutingStub(ch).Escalate(
                routing_pb2.EscalateRequest(case_id=case.id, actor="村值班员", reason="当事人分属两村")
            )
        # The town's acceptance comes down only the village's own filtered source.
        await wait_holder(local, VILLAGE, case.id, TOWN, pb.CASE_STATUS_RECEIVED)  # type: ignore[arg-type]
        sibling_js = local[SIBLING].ctx.js  # type: ignore[union-attr]
        info = await sibling_js.stream_info(down_stream(SIBLING))
        assert info.state.messages == 0
        links = await node_links(local, COUNTY)
        assert {links[c].upstream_link for c in (TOWN, VILLAGE, SIBLING)} == {"up"}
        own = await node_links(local, VILLAGE)
        assert own[VILLAGE].upstream_link == "up"


async def _sourced(local: LeafCounty, code: str, origin: str) -> bool:
    return await sourced_messages(local, code, origin) > 0


async def test_a_village_cannot_read_its_siblings_events_off_the_sourcing_subjects(tmp_path: Path) -> None:
    async with tls_county(tmp_path) as local, client(local, VILLAGE) as village:
        overheard = Inbox()
        await village.subscribe(">", cb=overheard.add)  # everything the village's server may see
        await village.flush()
        case = await submit(local, SIBLING)
        await eventually(lambda: _sourced(local, TOWN, SIBLING), within_s=15, what="the sibling's case at the town")
        await asyncio.sleep(0.5)  # proving absence: deliveries would have arrived with the town's
        leaked = [subject for subject, data in overheard.messages if case.id.encode() in data]
        assert leaked == []
        assert overheard.subjects, "the wildcard subscription heard nothing at all: the check proves nothing"
