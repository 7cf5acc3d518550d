"""A node's JetStream streams: which it has, how they are bounded, and keeping their sources alive.

Each node has an events stream (its own events, sourcing its children's) and a down stream (what
it sends down, sourcing what its parent sent down for its subtree). See docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import asyncio
import logging

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from fengqiao import bus
from fengqiao.divisions import (
    down_deliver,
    down_filter,
    down_stream,
    events_stream,
    own_down_subjects,
    own_up_subjects,
    parent_code,
    subtree_subjects,
    up_deliver,
)
from fengqiao.topology import Topology

log = logging.getLogger(__name__)


SOURCE_STALE_AFTER_S = 10.0  # a source heartbeats every second or so; this much silence is a dead link


def stream_plan(topology: Topology, code: str) -> list[tuple[str, list[str], list[bus.Source]]]:
    """A node's two streams (name, subjects, sources): events going up — its own, sourcing its
    children's — and messages going down — its own, sourcing what its parent sent down for it.

    In the leaf topology each other node's stream lives in that node's JetStream domain, so
    each source names the domain it is reached through (over the leafnode connection). A child's
    events are sourced only on its own subtree's subjects: a child whose stream captured a
    sibling's subjects cannot pass them off as the sibling's (the decode step reads the sender
    from the subject)."""
    children = [
        bus.Source(
            events_stream(c.code), subtree_subjects(c.code), domain=topology.domain(c.code), deliver=up_deliver(c.code)
        )
        for c in topology.children(code)
    ]
    parent = parent_code(code)
    above = (
        [bus.Source(down_stream(parent), down_filter(code), topology.domain(parent), down_deliver(code))]
        if parent
        else []
    )
    return [
        (events_stream(code), own_up_subjects(code), children),
        (down_stream(code), [own_down_subjects(code)], above),
    ]


def stream_limits(topology: Topology, code: str, stream: str) -> bus.StreamLimits:
    """Bounds of a node's stream. In the leaf topology a node's events stream is its upward
    buffer: bounded by the topology's limits, refusing new events when full (they wait in the
    outbox). The county's streams are replicated over its cluster."""
    if not topology.leafnodes:
        return bus.StreamLimits()
    spec = topology.node(code)
    replicas = min(spec.nats.servers, 3)
    if stream != events_stream(code) or spec.parent is None:
        return bus.StreamLimits(replicas=replicas)
    limits = spec.limits
    return bus.StreamLimits(
        max_bytes=limits.buffer_bytes,
        max_msgs=limits.buffer_msgs,
        max_age_s=float(limits.buffer_age_s) if limits.buffer_age_s > 0 else None,
        discard_new=True,
        replicas=replicas,
    )


async def ensure_streams(js: JetStreamContext, topology: Topology, code: str, *, patience_s: float = 30.0) -> None:
    """Create or update the node's streams; a JetStream still electing its leaders (a county
    cluster starting up) answers with time-outs for a while, so keep asking for ``patience_s``."""
    deadline = asyncio.get_running_loop().time() + patience_s
    for name, subjects, sources in stream_plan(topology, code):
        limits = stream_limits(topology, code, name)
        while True:
            try:
                await bus.ensure_stream(js, name=name, subjects=subjects, sources=sources, limits=limits)
                break
            except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError) as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                log.info("stream %s not ready yet (%s); retrying", name, exc)
                await asyncio.sleep(0.5)


async def watch_sources(js: JetStreamContext, topology: Topology, code: str, nc: NATS | None = None) -> None:
    """Revive sources whose stream appeared after ours (often at start-up) — and, in the leaf
    topology, sources silent since a link cut, as soon as the other side answers — until cancelled."""
    checks = 0
    stale_after_s = SOURCE_STALE_AFTER_S if topology.leafnodes else None
    while True:
        await asyncio.sleep(0.5 if checks < 120 else 2.0 if topology.leafnodes else 10.0)
        checks += 1
        for name, subjects, sources in stream_plan(topology, code):
            if not sources:
                continue
            try:
                limits = stream_limits(topology, code, name)
                await bus.revive_sources(
                    js, name=name, subjects=subjects, sources=sources, limits=limits, nc=nc, stale_after_s=stale_after_s
                )
            except Exception as exc:  # broker away: try again next round
                log.debug("source check of %s: %s", name, exc)
