"""Shared by the leaf-topology tests: a running leaf county and what they ask of it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import func
from sqlmodel import Session, select

from fengqiao.cases.records import CaseEventRecord, CaseRecord
from fengqiao.divisions import events_stream, subtree_subjects
from fengqiao.grpcutil import channel
from fengqiao.topology import Limits, Topology
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import federation_pb2, federation_pb2_grpc, intake_pb2_grpc
from harness.county import LeafCounty, small_county, submit_request

VILLAGE, TOWN, COUNTY = "371702101001", "371702101", "371702"


@contextlib.asynccontextmanager
async def leaf_county(
    tmp_path: Path,
    topology: Topology | None = None,
    *,
    limits: dict[str, Limits] | None = None,
    start: bool = True,
) -> AsyncIterator[LeafCounty]:
    """Every node with its own nats-server (rendered configs), SQLite databases, all started."""
    topology = topology or small_county(towns=1, villages=1)
    local = await LeafCounty.create(
        topology, tmp_path / "county", lambda code: f"sqlite:///{tmp_path / f'{code}.db'}", limits=limits
    )
    try:
        if start:
            await local.start()
        yield local
    finally:
        await local.close()


async def submit(local: LeafCounty, code: str, **fields: object) -> pb.Case:
    async with channel(local[code].grpc_address) as ch:
        return (await intake_pb2_grpc.IntakeStub(ch).SubmitCase(submit_request(code, **fields))).case


async def received_events(local: LeafCounty, code: str, *, origin: str) -> tuple[int, int]:
    """(cases, their ``received`` events) from ``origin`` in ``code``'s database: equal when each came once."""
    db = local[code].ctx.db  # type: ignore[union-attr]

    def count(session: Session) -> tuple[int, int]:
        # One statement, so both counts come from the same snapshot while replication goes on.
        cases = select(func.count()).select_from(CaseRecord).where(CaseRecord.origin_node == origin)
        received = (
            select(func.count())
            .select_from(CaseEventRecord)
            .where(CaseEventRecord.node == origin, CaseEventRecord.type == "received")
        )
        row = session.exec(select(cases.scalar_subquery(), received.scalar_subquery())).one()
        return int(row[0]), int(row[1])

    return await db.read(count)


async def sourced_messages(local: LeafCounty, code: str, origin: str) -> int:
    """Messages published by ``origin`` held in ``code``'s events stream (on ``code``'s own server)."""
    js = local[code].ctx.js  # type: ignore[union-attr]
    info = await js.stream_info(events_stream(code), subjects_filter=subtree_subjects(origin))
    return sum((info.state.subjects or {}).values())


async def node_links(local: LeafCounty, code: str) -> dict[str, federation_pb2.NodeInfo]:
    async with channel(local[code].grpc_address) as ch:
        reply = await federation_pb2_grpc.FederationStub(ch).ListNodes(federation_pb2.ListNodesRequest())
    return {n.code: n for n in reply.nodes}
