"""Wiring of the federation service: its gRPC methods and the subtree sync.

Two syncs store replicated events in this node's case log, once each (inbox): upward, the
events its stream sources from the nodes below, so figures cover the whole subtree; downward,
what the tiers above did to cases that came from here, so a village sees how its escalated
case ended. At the county, a task publishes the signed provincial feed on the JetStream stream
``FQ_FEED_<county>`` (subject ``fq.<county>._._.feed.provincial``), which the province can
source or consume durably; identical feeds are deduplicated by ``Nats-Msg-Id``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from sqlmodel import Session

from fengqiao.cases import store as casestore
from fengqiao.clock import CHINA_TZ, Clock
from fengqiao.divisions import Tier, down_filter, down_stream, events_stream, is_within, subtree_subjects
from fengqiao.errors import IllegalTransition
from fengqiao.grpcutil import Registration
from fengqiao.inbox import BadMessage, BatchHandler, Handler
from fengqiao.service import NodeContext, ServiceParts
from fengqiao.v1 import case_pb2, federation_pb2_grpc
from services.federation import keys
from services.federation.config import FederationSettings
from services.federation.handlers import Deps, FederationHandlers

log = logging.getLogger(__name__)
SYNC_CONSUMER = "fq-subtree-sync"
DOWN_CONSUMER = "fq-downward-sync"


def _replicated_event(node_code: str, msg: Msg, *, from_above: bool) -> case_pb2.CaseEvent:
    """The event a replicated message carries, if it may be stored here; else ``BadMessage``."""
    try:
        event = case_pb2.CaseEvent.FromString(msg.data)
    except DecodeError as exc:
        raise BadMessage(f"无法解析的案件事件：{exc}") from exc
    if not event.id or not event.case_id or event.seq < 1:
        raise BadMessage("案件事件缺少编号、案件编号或序号")
    if from_above and not is_within(node_code, event.node):
        raise BadMessage(f"下行事件来自非上级节点 {event.node}")
    if not from_above and not is_within(event.node, node_code):
        raise BadMessage(f"事件来自辖区外的节点 {event.node}")
    return event


def subtree_event_handler(node_code: str, clock: Clock, *, from_above: bool = False) -> Handler:
    """The inbox handler storing a replicated event — from below, or from the tiers above for
    the cases that came from here; malformed ones become dead letters."""

    def handle(session: Session, msg: Msg) -> None:
        event = _replicated_event(node_code, msg, from_above=from_above)
        try:
            casestore.store_replicated(session, event=event, now=clock.now())
        except IllegalTransition as exc:
            raise BadMessage(exc.message) from exc

    return handle


def subtree_batch_handler(node_code: str, clock: Clock, *, from_above: bool = False) -> BatchHandler:
    """``subtree_event_handler`` for a whole fetched batch in one go (the county's hot path);
    any bad message sends the batch back to the one-by-one handler, which dead-letters it."""

    def handle_many(session: Session, msgs: Sequence[Msg]) -> None:
        events = [_replicated_event(node_code, msg, from_above=from_above) for msg in msgs]
        casestore.store_replicated_many(session, events=events, now=clock.now())

    return handle_many


def feed_publisher(
    handlers: FederationHandlers, clock: Clock, interval_s: float
) -> Callable[[], Coroutine[Any, Any, None]]:
    """Every ``interval_s``, publish the feeds of last month and of this month so far."""

    async def run() -> None:
        while True:
            await asyncio.sleep(interval_s)
            today = clock.now().astimezone(CHINA_TZ).date()
            last = today.replace(day=1) - dt.timedelta(days=1)
            for period in (f"{last:%Y-%m}", f"{today:%Y-%m}"):
                try:
                    await handlers.publish_feed(period)
                except Exception as exc:  # broker away: the next round publishes again
                    log.warning("provincial feed %s not published: %s", period, exc)

    return run


def create(ctx: NodeContext) -> ServiceParts:
    """Federation answers for the subtree; nodes with children also sync it; the county signs
    and publishes the provincial feed."""
    settings = FederationSettings()
    is_county = ctx.spec.tier is Tier.COUNTY
    key_file = settings.feed_key_file or ctx.settings.data_dir / f"{ctx.spec.code}-feed-ed25519.pem"
    deps = Deps(
        db=ctx.db,
        node_code=ctx.spec.code,
        topology=ctx.topology,
        nc=ctx.nc,
        js=ctx.js,
        clock=ctx.clock,
        settings=settings,
        feed_key=keys.load_or_create(key_file) if is_county else None,
        figure_sources=ctx.figure_sources,
    )
    handlers = FederationHandlers(deps)
    parts = ServiceParts(
        registration=Registration(
            "fengqiao.v1.Federation", federation_pb2_grpc.add_FederationServicer_to_server, handlers
        )
    )
    children = ctx.topology.children(ctx.spec.code)
    if children:
        consumer = ctx.consumer(
            stream=events_stream(ctx.spec.code),
            durable=SYNC_CONSUMER,
            filter_subjects=[subtree_subjects(c.code, kind="case") for c in children],
            handle=subtree_event_handler(ctx.spec.code, ctx.clock),
            handle_many=subtree_batch_handler(ctx.spec.code, ctx.clock),
            batch=settings.sync_batch,
        )
        parts.tasks.append(consumer.run)
    ancestors = ctx.topology.ancestors(ctx.spec.code)
    if ancestors:
        downward = ctx.consumer(
            stream=down_stream(ctx.spec.code),
            durable=DOWN_CONSUMER,
            filter_subjects=[down_filter(ctx.spec.code, sender=a.code, kind="case") for a in ancestors],
            handle=subtree_event_handler(ctx.spec.code, ctx.clock, from_above=True),
            handle_many=subtree_batch_handler(ctx.spec.code, ctx.clock, from_above=True),
            batch=settings.sync_batch,
        )
        parts.tasks.append(downward.run)
    if is_county and settings.feed_publish_interval_s > 0:
        parts.tasks.append(feed_publisher(handlers, ctx.clock, settings.feed_publish_interval_s))
    return parts
