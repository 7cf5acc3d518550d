"""Restarting the county's process while villages keep submitting loses and duplicates nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from devtools.natsserver import NatsServer
from fengqiao.db import Database
from fengqiao.grpcutil import channel
from fengqiao.v1 import common_pb2, federation_pb2, federation_pb2_grpc, intake_pb2, intake_pb2_grpc
from harness.county import PERSONAL_DATA_KEY, TOKEN_SECRET, LocalCounty, small_county, submit_request
from tests.system.test_county_sync import COUNTY, eventually

VILLAGES = ("371702101001", "371702101002", "371702102001", "371702102002")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class NodeProcess:
    """A node — or some of its services — as a real OS process (``fengqiao node``)."""

    def __init__(
        self, local: LocalCounty, database_url: str, workdir: Path, *, code: str = COUNTY, services: str = ""
    ) -> None:
        self.code = code
        self.grpc_port = free_port()
        self.env = {
            **os.environ,
            "FQ_TOKEN_SECRET": TOKEN_SECRET,
            "FQ_PERSONAL_DATA_KEY": PERSONAL_DATA_KEY,
            "FQ_NATS_URL": local.nats_url,
            "FQ_DATA_DIR": str(workdir),
            "DATABASE_URL": database_url,
            "FQ_GRPC_PORT": str(self.grpc_port),
            "FQ_HTTP_PORT": "0",
        }
        self.args = [sys.executable, "-m", "host.cli", "node", "--code", code]
        self.args += ["--topology", str(local.topology_file)] + (["--services", services] if services else [])
        self.log = workdir / f"node-{code}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    async def received(self) -> int:
        async with channel(f"127.0.0.1:{self.grpc_port}", timeout_s=2) as ch:
            try:
                stats = await federation_pb2_grpc.FederationStub(ch).GetNodeStats(
                    federation_pb2.GetNodeStatsRequest(code=COUNTY)
                )
            except Exception:
                return -1
            return stats.received

    async def case_ids(self) -> list[str]:
        ids: list[str] = []
        token = ""
        async with channel(f"127.0.0.1:{self.grpc_port}") as ch:
            stub = intake_pb2_grpc.IntakeStub(ch)
            while True:
                page = await stub.ListCases(
                    intake_pb2.ListCasesRequest(page=common_pb2.PageRequest(page_size=500, page_token=token))
                )
                ids.extend(c.id for c in page.cases)
                token = page.page.next_page_token
                if not token:
                    return ids


@pytest.mark.slow
async def test_restarting_the_county_while_villages_submit_leaves_every_case_there_exactly_once(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str]
) -> None:
    county_db = database_url("county")
    urls = {node.code: database_url(node.code) for node in small_county().nodes if node.code != COUNTY}
    urls[COUNTY] = county_db
    local = LocalCounty(small_county(), tmp_path / "local", nats_server.url, urls.__getitem__)
    county = NodeProcess(local, county_db, tmp_path)
    county.start()
    await local.start(*(c for c in urls if c != COUNTY))
    submitted: list[str] = []

    async def submit_at(code: str, n: int) -> None:
        async with channel(local[code].grpc_address) as ch:
            stub = intake_pb2_grpc.IntakeStub(ch)
            for _ in range(n):
                submitted.append((await stub.SubmitCase(submit_request(code))).case.id)
                await asyncio.sleep(0.02)

    try:
        await eventually(lambda: _positive(county.received()), within_s=20, what="county process serving")
        writers = asyncio.gather(*(submit_at(code, 40) for code in VILLAGES))
        await asyncio.sleep(0.3)
        county.kill()  # SIGKILL mid-stream: no graceful shutdown
        await asyncio.sleep(0.5)
        county.start()
        await asyncio.sleep(0.3)
        county.kill()
        county.start()
        await writers

        async def all_there() -> bool:
            return await county.received() == len(submitted)

        await eventually(all_there, within_s=30, what=f"all {len(submitted)} cases at the restarted county")
        ids = await county.case_ids()
        assert len(ids) == len(submitted) == 160
        assert set(ids) == set(submitted)
        db = Database(county_db)
        try:
            events = await db.run(
                lambda s: s.execute(text("SELECT COUNT(*), COUNT(DISTINCT id) FROM case_event")).one()
            )
        finally:
            db.close()
        assert tuple(events) == (160, 160)
    finally:
        county.kill()
        await local.stop()


async def _positive(value: Awaitable[int]) -> bool:
    return await value >= 0
