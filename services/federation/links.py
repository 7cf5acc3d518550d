"""Link state: how each node's upward link stands, read from JetStream's own stream info.

A parent sources each child's events stream; the parent's stream info says, per source, how
many messages it still lags behind (``lag``) and how long since it last heard from the child
(``active``, heartbeats included). In the leaf topology every node's stream lives in its own
JetStream domain, reached through ``$JS.<domain>.API`` over the leafnode connections, so a
node asks its parent's domain about itself, and each domain below it about its children.

A node's own events stream is also its upward buffer: bounded, and refusing new events when
full (they wait in the outbox). A full buffer is an alarm: logged, and shown as the link state
``buffer_full`` in ``/api/v1/nodes``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js import api as js_api

from fengqiao.bus import source_silent_s
from fengqiao.divisions import events_stream
from fengqiao.metrics import Gauges, Reading
from fengqiao.topology import Topology

log = logging.getLogger(__name__)

STALE_AFTER_S = 10.0  # a source heartbeats every few seconds; silence this long is a dead link
ASK_TIMEOUT_S = 1.0
BUFFER_FULL_AT = 0.98


@dataclasses.dataclass(frozen=True)
class Link:
    """The upward link of one node, as its parent sees it."""

    state: str  # "up", "down", "unknown", "n/a" (the county), "buffer_full" (alarm)
    lag: int = 0  # messages not yet at the parent: JetStream's lag, plus the node's outbox
    idle_s: float | None = None  # since the parent last heard from the node


@dataclasses.dataclass(frozen=True)
class Buffer:
    """How full a node's upward buffer (its events stream) is."""

    messages: int
    bytes: int
    used: float  # 0…1 of the tighter of its bounds; 0 when unbounded

    @property
    def full(self) -> bool:
        return self.used >= BUFFER_FULL_AT


def buffer_of(info: js_api.StreamInfo) -> Buffer:
    """The fill of a stream against its configured bounds."""
    state, config = info.state, info.config
    used = 0.0
    if config.max_bytes and config.max_bytes > 0:
        used = max(used, state.bytes / config.max_bytes)
    if config.max_msgs and config.max_msgs > 0:
        used = max(used, state.messages / config.max_msgs)
    return Buffer(messages=state.messages, bytes=state.bytes, used=used)


async def _stream_info(nc: NATS, js: JetStreamContext, topology: Topology, code: str) -> js_api.StreamInfo | None:
    """A node's events stream info, from its own domain; None when out of reach."""
    domain = topology.domain(code)
    where = js if domain is None else nc.jetstream(domain=domain, timeout=ASK_TIMEOUT_S)
    try:
        return await asyncio.wait_for(where.stream_info(events_stream(code)), ASK_TIMEOUT_S + 0.5)
    except Exception as exc:  # not there yet, or the link to it is down
        log.debug("no stream info for %s: %s", code, exc)
        return None


def _links_from(info: js_api.StreamInfo) -> dict[str, Link]:
    links = {}
    for source in info.sources or []:
        code = source.name.removeprefix("FQ_EVENTS_")
        silent = source_silent_s(source)
        down = source.error is not None or silent > STALE_AFTER_S
        links[code] = Link("down" if down else "up", int(source.lag or 0), None if silent == float("inf") else silent)
    return links


async def subtree_links(
    *, nc: NATS, js: JetStreamContext, topology: Topology, code: str, outbox_pending: int
) -> dict[str, Link]:
    """The upward link of ``code`` and of every node below it, by node code."""
    # Each parent's stream knows its children's links; in the leaf topology it lives in the
    # parent's domain, reached over the leafnode connections (and out of reach when cut).
    asked = [s.code for s in topology.subtree(code) if topology.children(s.code)]
    spec = topology.node(code)
    if spec.parent is not None and topology.leafnodes:
        asked.append(spec.parent)
    infos = await asyncio.gather(*(_stream_info(nc, js, topology, c) for c in asked))
    links: dict[str, Link] = {}
    for info in infos:
        if info is not None:
            links.update(_links_from(info))
    result = {s.code: links.get(s.code, Link("unknown")) for s in topology.subtree(code)}
    if spec.parent is None:
        result[code] = Link("n/a")
    else:
        seen = links.get(code)
        if topology.leafnodes:  # the parent answered (the link is up) or did not
            state = seen.state if seen is not None else "down"
        else:
            state = "up" if nc.is_connected else "down"
        result[code] = Link(state, outbox_pending + (seen.lag if seen else 0), seen.idle_s if seen else None)
        own = await _stream_info(nc, js, topology, code) if topology.leafnodes else None
        if own is not None and buffer_of(own).full:
            log.error("node %s: upward buffer full (%d messages); events wait in the outbox", code, own.state.messages)
            result[code] = dataclasses.replace(result[code], state="buffer_full")
    return result


def link_gauges(*, nc: NATS, js: JetStreamContext, topology: Topology, code: str) -> Gauges:
    """The link state of every node below ``code`` at each scrape: ``fengqiao_link_up`` (1 up,
    0 down or buffer full) and ``fengqiao_source_lag_messages`` (JetStream's source lag). A node
    whose parent's stream is out of reach cannot be judged and has no sample."""

    async def read() -> list[Reading]:
        links = await subtree_links(nc=nc, js=js, topology=topology, code=code, outbox_pending=0)
        known = {child: link for child, link in links.items() if child != code and link.state != "unknown"}
        return [
            Reading(
                "fengqiao_link_up",
                "Whether the upward link of a node below this one is up (1) or down (0), as its parent sees it",
                [({"child": child}, 1.0 if link.state == "up" else 0.0) for child, link in known.items()],
            ),
            Reading(
                "fengqiao_source_lag_messages",
                "Messages of a node below this one its parent's stream has not sourced yet",
                [({"child": child}, float(link.lag)) for child, link in known.items()],
            ),
        ]

    return read
