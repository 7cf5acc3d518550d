"""A node: one center's services, database, bus connection and HTTP, started and stopped together.

``Node`` runs the services its settings name (all four by default) in this process; the
county may run several processes with different ``services`` against one database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable

import grpc
import uvicorn

from fengqiao import bus, migrations
from fengqiao.clock import Clock
from fengqiao.db import Database
from fengqiao.divisions import inbox_prefix
from fengqiao.errors import Unavailable
from fengqiao.gauges import node_gauges
from fengqiao.grpcutil import start_server
from fengqiao.metrics import NodeMetrics
from fengqiao.outbox import OutboxRelay
from fengqiao.security import auth
from fengqiao.security.peers import PeerPolicy, server_credentials
from fengqiao.security.pki import TlsFiles
from fengqiao.service import FigureSource, NodeContext, ServiceParts
from fengqiao.settings import NodeSettings
from fengqiao.streams import ensure_streams, watch_sources
from fengqiao.telemetry import instrument_sqlalchemy
from fengqiao.topology import load_topology

log = logging.getLogger(__name__)


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
        self.metrics: NodeMetrics | None = None
        self._server: grpc.aio.Server | None = None
        self._http: uvicorn.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def bind_host(self) -> str:
        """Where gRPC and HTTP listen: the topology's host unless the settings say otherwise."""
        return self.settings.bind_host or self.spec.host

    @property
    def grpc_address(self) -> str:
        """This process's gRPC, as the process itself reaches it."""
        host = self.bind_host
        return f"{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{self.grpc_port}"

    async def start(self) -> None:
        """Open the database and the bus, start the services, gRPC and HTTP."""
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        instrument_sqlalchemy()
        url = settings.resolved_database_url()
        await asyncio.to_thread(migrations.upgrade, url)  # under a lock: the node's other processes wait
        db = Database(url)
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
        metrics = NodeMetrics(code)
        relay = OutboxRelay(db=db, js=js, on_published=metrics.outbox_published.inc, now=self.clock.now)
        key = settings.keyring()
        self.ctx = NodeContext(
            settings,
            self.topology,
            self.spec,
            db,
            nc,
            js,
            self.clock,
            relay.wake,
            key,
            figure_sources=figure_sources(),
            metrics=metrics,
        )
        factories = _service_factories()
        parts = [factories[name](self.ctx) for name in settings.services]
        metrics.add_gauges(node_gauges(db, node_code=code, now=self.clock.now))
        for part in parts:
            for gauges in part.gauges:
                metrics.add_gauges(gauges)
        port = settings.grpc_port if settings.grpc_port is not None else self.spec.grpc_port
        tls = TlsFiles.of(settings.tls_dir, self.spec.code) if settings.tls_dir is not None else None
        self._server, self.grpc_port = await start_server(
            [p.registration for p in parts if p.registration is not None],
            host=self.bind_host,
            port=port,
            credentials=None if tls is None else server_credentials(tls),
            interceptors=[metrics.grpc_interceptor(), *([] if tls is None else [PeerPolicy(self.spec.code)])],
        )
        for part in parts:
            for task in part.tasks:
                self._tasks.append(asyncio.create_task(task()))
        self._tasks.append(asyncio.create_task(relay.run()))
        self._tasks.append(asyncio.create_task(watch_sources(js, self.topology, self.spec.code, nc)))
        metrics_port = settings.metrics_port if settings.metrics_port is not None else self.spec.metrics_port
        metrics.start(settings.metrics_host, metrics_port, asyncio.get_running_loop())
        self.metrics = metrics
        if settings.serve_http:
            await self._start_http()
        log.info(
            "node %s (%s) pid %d serving gRPC %s, HTTP %s:%s, metrics %s",
            self.spec.code, self.spec.name, os.getpid(), self.grpc_address, self.bind_host, self.http_port,
            metrics.local_url,
        )  # fmt: skip

    async def _start_http(self) -> None:
        from gateway.app import create_app

        assert self.ctx is not None
        port = self.settings.http_port if self.settings.http_port is not None else self.spec.http_port
        sock = bind_socket(self.bind_host, port, what="HTTP ")
        self.http_port = sock.getsockname()[1]
        app = create_app(self.ctx, grpc_address=self.grpc_address)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._http = uvicorn.Server(config)
        self._tasks.append(asyncio.create_task(self._http.serve(sockets=[sock])))
        while not self._http.started:  # noqa: ASYNC110  (uvicorn offers no event to wait on)
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop everything this node started (safe to call twice); each step is bounded."""
        if self.metrics is not None:
            await asyncio.to_thread(self.metrics.stop)
            self.metrics = None
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


def _service_factories() -> dict[str, Callable[[NodeContext], ServiceParts]]:
    from services.assessment.server import create as assessment
    from services.federation.server import create as federation
    from services.intake.server import create as intake
    from services.routing.server import create as routing

    return {"intake": intake, "routing": routing, "assessment": assessment, "federation": federation}


def import_tables() -> None:
    """Import every SQLModel table of the shared library and the services, so
    ``SQLModel.metadata`` holds the whole schema the migrations must make (see fengqiao/migrations)."""
    import fengqiao.cases.records
    import fengqiao.models
    import fengqiao.security.audit
    import fengqiao.security.records  # noqa: F401

    _service_factories()


def figure_sources() -> tuple[FigureSource, ...]:
    """What other services add to the federation's figures: 四必评 assessments and 三联 joint
    cases, read from the node's database — so wired whichever services run in this process."""
    from services.assessment.store import assessment_figures
    from services.routing.joint.store import joint_figures

    return (assessment_figures, joint_figures)


async def run_until_stopped(node: Node, stop: asyncio.Event) -> None:
    """Start ``node``, wait for ``stop``, then stop it."""
    await node.start()
    try:
        await stop.wait()
    finally:
        await node.stop()
