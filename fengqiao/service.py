"""The contract a service is built from: what a node gives each service (``NodeContext``) and
what a service gives back (``ServiceParts``). The node host builds one and calls each service's
``create(ctx)``; services import this, never the host.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlmodel import Session

from fengqiao import inbox
from fengqiao.clock import Clock
from fengqiao.db import Database
from fengqiao.grpcutil import Registration
from fengqiao.metrics import Gauges, NodeMetrics
from fengqiao.security.sealing import Keyring
from fengqiao.settings import NodeSettings
from fengqiao.topology import NodeSpec, Topology


class FigureSource(Protocol):
    """Counts a service adds to the federation's figures of the subtree ``within`` for [start,
    end), keyed by their ``NodeStats`` field names, read in the federation's read transaction."""

    def __call__(self, session: Session, *, within: str, start: dt.datetime, end: dt.datetime) -> Mapping[str, int]: ...


@dataclasses.dataclass
class NodeContext:
    """What every service of a node is built from."""

    settings: NodeSettings
    topology: Topology
    spec: NodeSpec
    db: Database
    nc: NATS
    js: JetStreamContext
    clock: Clock
    outbox_written: Callable[[], None]  # wakes the node's outbox relay after a commit
    personal_key: Keyring  # the county's keys sealing parties' personal data (current and older ones)
    # Wired by the host whichever services run in this process: they read the node's database.
    figure_sources: tuple[FigureSource, ...] = ()
    metrics: NodeMetrics | None = None  # the node's Prometheus metrics (the host serves them)

    def consumer(
        self,
        *,
        stream: str,
        durable: str,
        filter_subjects: list[str],
        handle: inbox.Handler,
        on_applied: Callable[[], None] | None = None,
        batch: int = 256,
        handle_many: inbox.BatchHandler | None = None,
    ) -> inbox.InboxConsumer:
        """An inbox consumer on this node's bus and database."""
        return inbox.InboxConsumer(
            js=self.js,
            db=self.db,
            stream=stream,
            durable=durable,
            filter_subjects=filter_subjects,
            handle=handle,
            now=self.clock.now,
            on_applied=on_applied,
            batch=batch,
            handle_many=handle_many,
            applied=None if self.metrics is None else self.metrics.inbox_applied(durable),
        )


@dataclasses.dataclass
class ServiceParts:
    """What a service contributes to its node: gRPC methods, background work and the gauges
    Prometheus reads from it at each scrape."""

    registration: Registration | None = None
    tasks: list[Callable[[], Coroutine[Any, Any, None]]] = dataclasses.field(default_factory=list)
    gauges: list[Gauges] = dataclasses.field(default_factory=list)
