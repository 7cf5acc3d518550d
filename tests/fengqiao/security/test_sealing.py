"""Personal data sealed at rest: no party name, ID number, phone or address in clear in any
node's database or in the NATS streams, yet the case opens in full for those who may read it."""

from __future__ import annotations

import base64
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text
from sqlmodel import Session

from fengqiao.db import Database
from fengqiao.errors import Unavailable, status_of
from fengqiao.grpcutil import channel
from fengqiao.security import sealing
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import intake_pb2, intake_pb2_grpc
from harness.county import PERSONAL_DATA_KEY, LocalCounty, submit_request
from tests.system.test_county_sync import eventually

VILLAGE, TOWN, COUNTY = "371702101001", "371702101", "371702"
SECRETS = ("37170219850312004X", "13812345678", "张三", "三组12号")
KEY = sealing.from_settings(PERSONAL_DATA_KEY)


def a_case() -> pb.Case:
    return pb.Case(
        origin_node=VILLAGE,
        receipt_no="371702101001-20261122-0001",
        parties=[pb.Party(name="张三", id_number="37170219850312004X", phone="13812345678", role="申请人")],
        location=pb.Location(address="三组12号", latitude=35.2, longitude=115.4),
        description="邻里纠纷",
    )


def test_sealing_moves_the_personal_data_out_of_sight_and_opening_brings_it_back() -> None:
    case = a_case()
    KEY.seal(case)
    data = case.SerializeToString()
    assert not case.parties and case.location.address == "" and case.location.latitude == 35.2
    assert not any(secret.encode() in data for secret in SECRETS)
    assert KEY.opened(case) == a_case()


def test_another_key_or_a_changed_ciphertext_cannot_open_it_and_the_case_is_answered_without_it() -> None:
    case = a_case()
    KEY.seal(case)
    other = sealing.from_settings(sealing.new_key())
    with pytest.raises(sealing.SealError, match="未持有的密钥"):
        other.open(case)
    shown = other.opened(case)
    assert not shown.parties and shown.location.address == "" and not shown.sealed_personal
    assert f"编号 {KEY.current_id}" in shown.personal_note and shown.description == "邻里纠纷"
    tampered = pb.Case()
    tampered.CopyFrom(case)
    tampered.sealed_personal = case.sealed_personal[:-1] + bytes([case.sealed_personal[-1] ^ 1])
    with pytest.raises(sealing.SealError, match="校验失败"):
        KEY.open(tampered)
    assert "校验失败" in KEY.opened(tampered).personal_note
    moved = pb.Case()
    moved.CopyFrom(case)
    moved.receipt_no = "371702101001-20261122-0002"  # sealed data pasted onto another case
    with pytest.raises(sealing.SealError):
        KEY.open(moved)


def test_an_unreadable_seal_is_never_reported_as_retryable() -> None:
    status = status_of(sealing.SealError)
    assert not issubclass(sealing.SealError, Unavailable)
    assert status.grpc is not grpc.StatusCode.UNAVAILABLE and status.http != 503


def test_a_ring_opens_what_each_of_its_keys_sealed_and_seals_with_the_current_one() -> None:
    old, new = sealing.parse_key(PERSONAL_DATA_KEY), sealing.parse_key(sealing.new_key())
    ring = sealing.Keyring.of(old, new)
    before, after = a_case(), a_case()
    KEY.seal(before)
    ring.seal(after)
    assert sealing.sealed_key_id(before.sealed_personal) == sealing.key_id(old)
    assert sealing.sealed_key_id(after.sealed_personal) == ring.current_id == sealing.key_id(new)
    assert ring.opened(before) == a_case() == ring.opened(after)
    assert ring.resealed(before) and not ring.resealed(after)
    assert sealing.sealed_key_id(before.sealed_personal) == ring.current_id and ring.opened(before) == a_case()


def test_a_key_must_be_32_bytes_of_base64() -> None:
    for bad in ("", "not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError):
            sealing.parse_key(bad)


def _files_under(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file()]


async def _stored_blobs(db: Database) -> list[bytes]:
    """The data of every case and event row of a node."""

    def read(session: Session) -> list[bytes]:
        connection = session.connection()
        return [bytes(r[0]) for r in connection.execute(text("SELECT data FROM case_record"))] + [
            bytes(r[0]) for r in connection.execute(text("SELECT data FROM case_event"))
        ]

    return await db.read(read)


async def test_no_node_database_nor_stream_holds_personal_data_in_clear(chain: LocalCounty, tmp_path: Path) -> None:
    async with channel(chain[VILLAGE].grpc_address) as ch:
        case = (await intake_pb2_grpc.IntakeStub(ch).SubmitCase(submit_request(VILLAGE))).case
    assert case.parties[0].id_number == "37170219850312004X"  # the submitter gets it back in full

    async def at_the_county() -> bool:
        async with channel(chain[COUNTY].grpc_address) as ch:
            try:
                found = await intake_pb2_grpc.IntakeStub(ch).GetCase(intake_pb2.GetCaseRequest(id=case.id))
            except Exception:
                return False
        return found.parties[0].phone == "13812345678" and found.location.address == "三组12号"

    await eventually(at_the_county, within_s=10, what="the county opens the replicated case in full")
    for code in (VILLAGE, TOWN, COUNTY):  # the stored rows, whatever the database
        db = chain[code].ctx.db  # type: ignore[union-attr]

        async def holds_the_case(db: Database = db) -> bool:
            return bool(await _stored_blobs(db))  # the town's own consumer may trail the county's under load

        await eventually(holds_the_case, within_s=30, what=f"{code} stores the case")
        blobs = await _stored_blobs(db)
        assert blobs and not [secret for secret in SECRETS if any(secret.encode() in b for b in blobs)], code
    files = _files_under(tmp_path)  # SQLite files and WAL, the nats-server's JetStream store, attachments
    assert any("nats" in str(p) for p in files)
    leaked = [(p, s) for p in files for s in SECRETS if s.encode() in p.read_bytes()]
    assert leaked == []
