"""The NATS bus: connection, streams, and the inbox consumer every service uses.

Services talk only to their local nats-server. Each node has one events stream holding its
own events and, by stream sourcing, those of the nodes below it; the WAN hops are NATS's own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NotFoundError

from fengqiao.errors import Unavailable

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"


async def connect(url: str, *, name: str, inbox_prefix: str = "_INBOX") -> NATS:
    """Connect to the local nats-server, reconnecting forever (weak links)."""

    async def on_error(exc: Exception) -> None:
        log.warning("nats %s: %s", name, exc)

    async def on_disconnect() -> None:
        log.warning("nats %s: disconnected", name)

    async def on_reconnect() -> None:
        log.info("nats %s: reconnected", name)

    try:
        return await nats.connect(
            [u.strip() for u in url.split(",") if u.strip()],
            name=name,
            inbox_prefix=inbox_prefix,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=3,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
        )
    except Exception as exc:
        raise Unavailable(f"无法连接消息服务器 {url}") from exc


class Source(NamedTuple):
    """A stream to source from, optionally only the subjects matching ``filter_subject``.

    ``domain`` names the JetStream domain the stream lives in when it is another server's
    (a leaf's or the parent's): the source then goes through ``$JS.<domain>.API`` over the
    leafnode connection.
    """

    name: str
    filter_subject: str | None = None
    domain: str | None = None
    deliver: str | None = None  # the delivery subject prefix across the leaf (its own per node pair)

    def config(self) -> js_api.StreamSource:
        external = js_api.ExternalStream(api=f"$JS.{self.domain}.API", deliver=self.deliver) if self.domain else None
        return js_api.StreamSource(name=self.name, filter_subject=self.filter_subject, external=external)


class StreamLimits(NamedTuple):
    """Bounds of a stream; ``discard_new`` refuses new messages when full instead of dropping old ones."""

    max_bytes: int = -1
    max_msgs: int = -1
    max_age_s: float | None = None
    discard_new: bool = False
    replicas: int = 1


async def ensure_stream(
    js: JetStreamContext,
    *,
    name: str,
    subjects: Sequence[str],
    sources: Sequence[Source] = (),
    max_bytes: int = -1,
    limits: StreamLimits | None = None,
) -> js_api.StreamInfo:
    """Create or update a file-backed stream with the given subjects, sourced streams and limits."""
    limits = limits or StreamLimits(max_bytes=max_bytes)
    config = js_api.StreamConfig(
        name=name,
        subjects=list(subjects),
        sources=[s.config() for s in sources] or None,
        storage=js_api.StorageType.FILE,
        retention=js_api.RetentionPolicy.LIMITS,
        duplicate_window=120.0,
        max_bytes=limits.max_bytes,
        max_msgs=limits.max_msgs,
        max_age=limits.max_age_s,
        discard=js_api.DiscardPolicy.NEW if limits.discard_new else js_api.DiscardPolicy.OLD,
        num_replicas=limits.replicas,
    )
    try:
        await js.stream_info(name)
    except NotFoundError:
        return await js.add_stream(config)
    return await js.update_stream(config)


async def revive_sources(
    js: JetStreamContext,
    *,
    name: str,
    subjects: Sequence[str],
    sources: Sequence[Source],
    limits: StreamLimits | None = None,
    nc: NATS | None = None,
    stale_after_s: float | None = None,
) -> int:
    """Reconnect the sources of ``name`` that failed because their stream did not exist yet —
    or, with ``stale_after_s``, went silent that long (a cut leafnode link) and answer again.

    JetStream retries such a source only after a back-off (tens of seconds after a long cut);
    when the stream is reachable again, removing and re-adding the source connects it at once.
    On re-adding, the server finds the last message it holds from that source and resumes
    after it, so this duplicates nothing. A source in another domain is looked up there,
    through ``nc`` (skipped without it). Returns how many sources were revived.
    """
    info = await js.stream_info(name)
    failed = {
        s.name
        for s in info.sources or []
        if s.error or (stale_after_s is not None and source_silent_s(s) > stale_after_s)
    }
    ready = []
    for source in (s for s in sources if s.name in failed):
        if source.domain is not None and nc is None:
            continue
        where = js if source.domain is None or nc is None else nc.jetstream(domain=source.domain, timeout=2.0)
        try:
            await where.stream_info(source.name)
            ready.append(source.name)
        except NotFoundError:
            continue
        except Exception as exc:  # the other domain is out of reach: the link is down
            log.debug("source %s of %s unreachable: %s", source.name, name, exc)
    if not ready:
        return 0
    keep = [s for s in sources if s.name not in ready]
    await ensure_stream(js, name=name, subjects=subjects, sources=keep, limits=limits)
    await ensure_stream(js, name=name, subjects=subjects, sources=sources, limits=limits)
    log.info("stream %s: revived sources %s", name, ", ".join(sorted(ready)))
    return len(ready)


def source_silent_s(source: js_api.StreamSourceInfo) -> float:
    """Seconds since a source was last heard from; infinite when it has no consumer running
    (JetStream reports ``active`` -1 while it waits to retry one)."""
    if source.active is None or source.active < 0:
        return float("inf")
    return source.active / 1e9
