"""Wiring of the federation service: its gRPC methods and the subtree sync (``consumers``).

Two syncs store replicated events in this node's case log, once each (inbox): upward, the
events its stream sources from the nodes below; downward, what the tiers above did to cases
that came from here. A third consumer keeps the operator accounts the tiers above manage for
this node (sent down on kind ``account``). At the county, a task publishes the signed provincial feed on the JetStream
stream ``FQ_FEED_<county>`` (subject ``fq.<county>._._.feed.provincial``), which the province
can source or consume durably; identical feeds are deduplicated by ``Nats-Msg-Id``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fengqiao.clock import CHINA_TZ, Clock
from fengqiao.divisions import Tier, down_filter, down_stream, events_stream, subtree_subjects
from fengqiao.grpcutil import Registration
from fengqiao.service import NodeContext, ServiceParts
from fengqiao.v1 import federation_pb2_grpc
from services.federation import checkpoints, keys
from services.federation.config import FederationSettings
from services.federation.consumers import (
    ACCOUNT_CONSUMER,
    DOWN_CONSUMER,
    SYNC_CONSUMER,
    account_handler,
    accounts_for,
    subtree_batch_handler,
    subtree_event_handler,
)
from services.federation.handlers import Deps, FederationHandlers
from services.federation.links import link_gauges

log = logging.getLogger(__name__)


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
    ancestors = ctx.topology.ancestors(ctx.spec.code)
    signing_key = keys.load_or_create(key_file) if is_county or ancestors else None
    deps = Deps(
        db=ctx.db,
        node_code=ctx.spec.code,
        topology=ctx.topology,
        nc=ctx.nc,
        js=ctx.js,
        clock=ctx.clock,
        settings=settings,
        feed_key=signing_key if is_county else None,
        figure_sources=ctx.figure_sources,
    )
    handlers = FederationHandlers(deps)
    parts = ServiceParts(
        registration=Registration(
            "fengqiao.v1.Federation", federation_pb2_grpc.add_FederationServicer_to_server, handlers
        )
    )
    parts.gauges.append(link_gauges(nc=ctx.nc, js=ctx.js, topology=ctx.topology, code=ctx.spec.code))
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
        kept = ctx.consumer(
            stream=events_stream(ctx.spec.code),
            durable=checkpoints.CONSUMER,
            filter_subjects=[subtree_subjects(c.code, kind=checkpoints.KIND) for c in children],
            handle=checkpoints.handler(ctx.spec.code, ctx.clock),
        )
        parts.tasks.append(kept.run)
    if ancestors and signing_key is not None and settings.audit_checkpoint_interval_s > 0:
        sign = checkpoints.publisher(
            db=ctx.db,
            node_code=ctx.spec.code,
            key=signing_key,
            clock=ctx.clock,
            interval_s=settings.audit_checkpoint_interval_s,
        )
        parts.tasks.append(sign)
    if ancestors:
        downward = ctx.consumer(
            stream=down_stream(ctx.spec.code),
            durable=DOWN_CONSUMER,
            filter_subjects=[down_filter(ctx.spec.code, sender=a.code, kind="case") for a in ancestors],
            handle=subtree_event_handler(ctx.spec.code, ctx.clock, from_above=True),
            handle_many=subtree_batch_handler(ctx.spec.code, ctx.clock, from_above=True),
            batch=settings.sync_batch,
        )
        accounts = ctx.consumer(
            stream=down_stream(ctx.spec.code),
            durable=ACCOUNT_CONSUMER,
            filter_subjects=[accounts_for(ctx.spec.code)],
            handle=account_handler(ctx.spec.code, ctx.clock),
        )
        parts.tasks += [downward.run, accounts.run]
    if is_county and settings.feed_publish_interval_s > 0:
        parts.tasks.append(feed_publisher(handlers, ctx.clock, settings.feed_publish_interval_s))
    return parts
