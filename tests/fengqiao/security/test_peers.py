"""gRPC over mTLS with the county PKI: no certificate, or one from another CA, gets nowhere; the
peer certificate's division code decides what the caller may do."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest

from devtools.natsserver import NatsServer
from fengqiao.grpcutil import channel
from fengqiao.security import pki
from fengqiao.security.peers import channel_credentials, may_call
from fengqiao.v1 import federation_pb2, federation_pb2_grpc, intake_pb2, intake_pb2_grpc
from harness.county import LocalCounty, submit_request
from tests.conftest import running_county

VILLAGE, OTHER_VILLAGE, TOWN, COUNTY = "371702101001", "371702101002", "371702101", "371702"
NOW = dt.datetime.now(dt.UTC)


@pytest.mark.parametrize(
    ("peer", "method", "allowed"),
    [
        (VILLAGE, "/fengqiao.v1.Intake/SubmitCase", True),
        (TOWN, "/fengqiao.v1.Intake/ListCases", True),
        (COUNTY, "/fengqiao.v1.Intake/GetCase", True),
        (TOWN, "/fengqiao.v1.Intake/SubmitCase", False),
        (TOWN, "/fengqiao.v1.Routing/Escalate", False),
        (OTHER_VILLAGE, "/fengqiao.v1.Intake/ListCases", False),
        ("371702102", "/fengqiao.v1.Intake/ListCases", False),  # another town
        ("", "/fengqiao.v1.Intake/ListCases", False),
        (OTHER_VILLAGE, "/grpc.health.v1.Health/Check", True),
    ],
)
def test_what_a_peer_may_call_on_a_village(peer: str, method: str, allowed: bool) -> None:
    assert (may_call(VILLAGE, peer, method) is None) == allowed


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    """The county CA with certificates for the village, its neighbour, its town and the county —
    made through the ``fengqiao pki`` command — and a village certificate from a foreign CA."""
    directory = tmp_path / "pki"
    base = [sys.executable, "-m", "host.cli", "pki"]
    commands = [[*base, "init", "--dir", str(directory), "--county", COUNTY, "--name", "测试县"]]
    commands += [
        [*base, "issue", "--dir", str(directory), "--code", c, "--host", "127.0.0.1"]
        for c in (VILLAGE, OTHER_VILLAGE, TOWN, COUNTY)
    ]
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
    foreign = tmp_path / "foreign"
    pki.init_ca(foreign, county="440303", name="外县", now=NOW)
    with pytest.raises(Exception, match="不属于"):
        pki.issue(foreign, code=VILLAGE, hosts=["127.0.0.1"], now=NOW)
    pki.issue(foreign, code="440303001001", hosts=["127.0.0.1"], now=NOW)
    return directory


@pytest.fixture
async def secured(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str], pki_dir: Path
) -> AsyncIterator[LocalCounty]:
    async with running_county(tmp_path, nats_server.url, database_url, VILLAGE, towns=1, villages=2) as local:
        await local.stop(VILLAGE)
        await local.start(VILLAGE, tls_dir=pki_dir)
        yield local


async def call(local: LocalCounty, credentials: grpc.ChannelCredentials | None, method: str, request: object) -> object:
    async with channel(local[VILLAGE].grpc_address, timeout_s=3, credentials=credentials) as ch:
        return await getattr(intake_pb2_grpc.IntakeStub(ch), method)(request)


def creds(directory: Path, code: str) -> grpc.ChannelCredentials:
    return channel_credentials(pki.TlsFiles(directory / "ca.crt", directory / f"{code}.crt", directory / f"{code}.key"))


async def test_only_nodes_with_a_county_certificate_get_in_and_each_only_as_far_as_its_tier(
    secured: LocalCounty, pki_dir: Path, tmp_path: Path
) -> None:
    own = await call(secured, creds(pki_dir, VILLAGE), "SubmitCase", submit_request(VILLAGE))
    assert isinstance(own, intake_pb2.SubmitCaseResponse) and own.case.origin_node == VILLAGE

    for credentials in (None, creds(tmp_path / "foreign", "440303001001")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(secured, credentials, "ListCases", intake_pb2.ListCasesRequest())
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # no handshake without the county's CA

    listed = await call(secured, creds(pki_dir, TOWN), "ListCases", intake_pb2.ListCasesRequest())
    assert isinstance(listed, intake_pb2.ListCasesResponse) and [c.id for c in listed.cases] == [own.case.id]
    for code, method, request in (
        (TOWN, "SubmitCase", submit_request(VILLAGE)),
        (COUNTY, "SubmitCase", submit_request(VILLAGE)),
        (OTHER_VILLAGE, "ListCases", intake_pb2.ListCasesRequest()),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(secured, creds(pki_dir, code), method, request)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, (code, method)
        assert code in (caught.value.details() or "")


def test_a_certificate_names_its_node_by_division_code(pki_dir: Path) -> None:
    assert pki.division_code_of((pki_dir / f"{TOWN}.crt").read_bytes()) == TOWN
    assert oct((pki_dir / "ca.key").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(Exception, match="已有"):
        pki.init_ca(pki_dir, county=COUNTY, name="again", now=NOW)


@pytest.mark.parametrize(
    ("peer", "method", "allowed"),
    [
        (VILLAGE, "/fengqiao.v1.Federation/ListAuditCheckpoints", True),  # reading back its own checkpoints
        (VILLAGE, "/fengqiao.v1.Federation/ListNodes", False),
        (VILLAGE, "/fengqiao.v1.Intake/ListCases", False),
        ("371702102001", "/fengqiao.v1.Federation/ListAuditCheckpoints", False),  # a village of another town
    ],
)
def test_what_a_village_may_call_on_its_town(peer: str, method: str, allowed: bool) -> None:
    assert (may_call(TOWN, peer, method) is None) == allowed


async def test_a_village_reads_back_its_own_audit_checkpoints_at_its_town_and_no_one_elses(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str], pki_dir: Path
) -> None:
    async with running_county(tmp_path, nats_server.url, database_url, TOWN, VILLAGE, towns=1, villages=2) as local:
        await local.stop(TOWN)
        await local.start(TOWN, tls_dir=pki_dir)
        async with channel(local[TOWN].grpc_address, timeout_s=5, credentials=creds(pki_dir, VILLAGE)) as ch:
            stub = federation_pb2_grpc.FederationStub(ch)
            own = await stub.ListAuditCheckpoints(federation_pb2.ListAuditCheckpointsRequest(node=VILLAGE))
            assert list(own.checkpoints) == []  # none signed yet
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ListAuditCheckpoints(federation_pb2.ListAuditCheckpointsRequest(node=OTHER_VILLAGE))
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert caught.value.details() == f"节点 {VILLAGE} 无权读取 {OTHER_VILLAGE} 的审计检查点"
        command = [sys.executable, "-m", "host.cli", "audit", "verify", "--database", local[VILLAGE].ctx.db.url]  # type: ignore[union-attr]
        command += ["--node", VILLAGE, "--parent", local[TOWN].grpc_address, "--tls-dir", str(pki_dir)]
        result = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "（上级尚未存有本中心的检查点）" in result.stdout
