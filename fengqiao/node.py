"""A node: one center's services, database, bus connection and HTTP, started and stopped together.

``Node`` runs the services its settings name (all four by default) in this process; the
county may run several processes with different ``services`` against one database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import grpc
import nats.errors
import nats.js.errors
import uvicorn
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from fengqiao import auth, bus, sealing
from fengqiao.clock import Clock
from fengqiao.db import Database
from fengqiao.divisions import (
    down_deliver,
    down_filter,
    down_stream,
    events_stream,
    inbox_prefix,
    own_down_subjects,
    own_up_subjects,
    parent_code,
    up_deliver,
)
from fengqiao.errors import Unavailable
from fengqiao.grpcutil import Registration, start_server
from fengqiao.outbox import OutboxRelay
from fengqiao.peers import PeerPolicy, server_credentials
from fengqiao.pki import TlsFiles
from fengqiao.sealing import PersonalKey
from fengqiao.settings import NodeSettings
from fengqiao.telemetry import instrument_sqlalchemy
from fengqiao.topology import NodeSpec, Topology, load_topology

log = logging.getLogger(__name__)

SOURCE_STALE_AFTER_S = 10.0  # a source heartbeats every second or so; this much silence is a dead link


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
    personal_key: PersonalKey  # the county's key sealing parties' personal data

    def consumer(
        self,
        *,
        stream: str,
        durable: str,
        filter_subjects: list[str],
        handle: bus.Handler,
        on_applied: Callable[[], None] | None = None,
        batch: int = 256,
        handle_many: bus.BatchHandler | None = None,
    ) -> bus.InboxConsumer:
        """An inbox consumer on this node's bus and database."""
        return bus.InboxConsumer(
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
        )


@dataclasses.dataclass
class ServiceParts:
    """What a service contributes to its node: gRPC methods and background work."""

    registration: Registration | None = None
    tasks: list[Callable[[], Coroutine[Any, Any, None]]] = dataclasses.field(default_factory=list)


def bind_socket(host: str, port: int, *, what: str) -> socket.socket:
    """Bind a listening TCP socket or fail with a message naming the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise Unavailable(f"{what}端口 {host}:{port} 已被占用或无法绑定：{exc.strerror}") from exc
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class Node:
    """One running center."""

    def __init__(self, settings: NodeSettings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or settings.clock()
        self.topology = load_topology(settings.topology_file)
        self.spec = self.topology.node(settings.node_code)
        self.grpc_port = 0
        self.http_port = 0
        self.ctx: NodeContext | None = None
        self._server: grpc.aio.Server | None = None
        self._http: uvicorn.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def grpc_address(self) -> str:
        return f"{self.spec.host}:{self.grpc_port}"

    async def start(self) -> None:
        """Open the database and the bus, start the services, gRPC and HTTP."""
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        instrument_sqlalchemy()
        db = Database(settings.resolved_database_url())
        _service_factories()  # imports every service's tables before create_all
        await asyncio.to_thread(db.create_all)
        if settings.admin_password is not None:
            password = settings.admin_password.get_secret_value()
            await db.run(
                lambda s: auth.ensure_user(
                    s, username="admin", password=password, role="county_admin", node_code=self.spec.code
                )
            )
        code = self.spec.code
        nc = await bus.connect(settings.nats_url, name=f"fq-{code}", inbox_prefix=inbox_prefix(code))
        js = nc.jetstream()
        await ensure_streams(js, self.topology, self.spec.code)
        relay = OutboxRelay(db=db, js=js)
        key = sealing.from_settings(settings.personal_data_key.get_secret_value())
        self.ctx = NodeContext(settings, self.topology, self.spec, db, nc, js, self.clock, relay.wake, key)
        factories = _service_factories()
        parts = [factories[name](self.ctx) for name in settings.services]
        port = settings.grpc_port if settings.grpc_port is not None else self.spec.grpc_port
        tls = TlsFiles.of(settings.tls_dir, self.spec.code) if settings.tls_dir is not None else None
        self._server, self.grpc_port = await start_server(
            [p.registration for p in parts if p.registration is not None],
            host=self.spec.host,
            port=port,
            credentials=None if tls is None else server_credentials(tls),
            interceptors=[] if tls is None else [PeerPolicy(self.spec.code)],
        )
        for part in parts:
            for task in part.tasks:
                self._tasks.append(asyncio.create_task(task()))
        self._tasks.append(asyncio.create_task(relay.run()))
        self._tasks.append(asyncio.create_task(watch_sources(js, self.topology, self.spec.code, nc)))
        if settings.serve_http:
            await self._start_http()
        log.info(
            "node %s (%s) pid %d serving gRPC %s, HTTP %s:%s",
            self.spec.code, self.spec.name, os.getpid(), self.grpc_address, self.spec.host, self.http_port,
        )  # fmt: skip

    async def _start_http(self) -> None:
        from fengqiao.web.app import create_app

        assert self.ctx is not None
        port = self.settings.http_port if self.settings.http_port is not None else self.spec.http_port
        sock = bind_socket(self.spec.host, port, what="HTTP ")
        self.http_port = sock.getsockname()[1]
        app = create_app(self.ctx, grpc_address=self.grpc_address)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._http = uvicorn.Server(config)
        self._tasks.append(asyncio.create_task(self._http.serve(sockets=[sock])))
        while not self._http.started:  # noqa: ASYNC110  (uvicorn offers no event to wait on)
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop everything this node started (safe to call twice); each step is bounded."""
        if self._http is not None:
            self._http.should_exit = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            await _bounded(asyncio.shield(task), f"task {task.get_coro()!r}")
        self._tasks.clear()
        if self._server is not None:
            await _bounded(self._server.stop(grace=1.0), "gRPC server")
            self._server = None
        if self.ctx is not None:
            await _bounded(self.ctx.nc.close(), "NATS connection")
            self.ctx.db.close()
            self.ctx = None


async def _bounded(awaitable: Awaitable[object], what: str, timeout_s: float = 5.0) -> None:
    try:
        await asyncio.wait_for(awaitable, timeout_s)
    except TimeoutError:
        log.warning("stopping %s took over %.0f s; moving on", what, timeout_s)
    except (asyncio.CancelledError, Exception):  # a cancelled or failed task has stopped
        pass


def stream_plan(topology: Topology, code: str) -> list[tuple[str, list[str], list[bus.Source]]]:
    """A node's two streams (name, subjects, sources): events going up — its own, sourcing its
    children's — and messages going down — its own, sourcing what its parent sent down for it.

    In the leaf topology each other node's stream lives in that node's JetStream domain, so
    each source names the domain it is reached through (over the leafnode connection)."""
    children = [
        bus.Source(events_stream(c.code), domain=topology.domain(c.code), deliver=up_deliver(c.code))
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


def _service_factories() -> dict[str, Callable[[NodeContext], ServiceParts]]:
    # Imported here: the services import this module for NodeContext.
    from services.assessment.server import create as assessment
    from services.federation.server import create as federation
    from services.intake.server import create as intake
    from services.routing.server import create as routing

    return {"intake": intake, "routing": routing, "assessment": assessment, "federation": federation}


async def run_until_stopped(node: Node, stop: asyncio.Event) -> None:
    """Start ``node``, wait for ``stop``, then stop it."""
    await node.start()
    try:
        await stop.wait()
    finally:
        await node.stop()
