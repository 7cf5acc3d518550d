"""Rotating the county's personal-data key at a town that keeps serving: cases sealed before and
after read in full, lists never fail, an interrupted re-seal goes on where it stopped, and at the
end no stored value is under the old key; a case under a key the town does not hold is listed
without its personal data and with the reason, and a step on it is recorded once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import httpx
import pytest
from sqlalchemy import text
from sqlmodel import Session, col, select

from devtools.natsserver import NatsServer
from fengqiao.cases import reseal
from fengqiao.cases.audited import audited_content
from fengqiao.db import Database
from fengqiao.grpcutil import channel
from fengqiao.security import audit, keyring, sealing
from fengqiao.security.audit import AuditRecord
from fengqiao.topology import load_topology
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import intake_pb2, intake_pb2_grpc
from harness.county import ADMIN_PASSWORD, PERSONAL_DATA_KEY, LocalCounty, small_county, submit_request
from host import cli
from tests.system.test_demo import PASSWORD, TOPOLOGY, free_base, start_demo, stop, wait_healthy

TOWN = "371702101"
PHONE = "13812345678"
OLD = sealing.key_id(sealing.parse_key(PERSONAL_DATA_KEY))


@contextlib.asynccontextmanager
async def town_with_keyring(
    tmp_path: Path, nats_url: str, database_url: Callable[[str], str]
) -> AsyncIterator[tuple[LocalCounty, Path, str]]:
    """The town running alone with ``FQ_PERSONAL_DATA_KEY`` and a keyring file not yet written."""
    url = database_url(TOWN)
    local = LocalCounty(small_county(towns=1, villages=1), tmp_path / "county", nats_url, lambda _c: url)
    ring = tmp_path / "keys" / "keyring.json"
    await local.start(TOWN, personal_keyring=ring)
    try:
        yield local, ring, url
    finally:
        await local.stop()


def stored_key_ids(url: str) -> dict[str, list[str | None]]:
    """The key id of every stored sealed value, read from the rows themselves."""
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            cases = [pb.Case.FromString(bytes(d)) for (d,) in conn.execute(text("SELECT data FROM case_record"))]
            events = [
                pb.CaseEvent.FromString(bytes(d))
                for (d,) in conn.execute(text("SELECT data FROM case_event WHERE type = 'received'"))
            ]
    finally:
        db.close()
    return {
        "case_record": [sealing.sealed_key_id(c.sealed_personal) for c in cases],
        "case_event": [sealing.sealed_key_id(e.received.case.sealed_personal) for e in events],
    }


async def walk_to_started(api: intake_pb2_grpc.IntakeStub, case_id: str) -> pb.Case:
    who = "值班员刘洋"
    step = pb.Triaged(category="邻里", response_class=pb.RESPONSE_CLASS_ROUTINE)
    await api.Triage(intake_pb2.TriageRequest(case_id=case_id, actor=who, step=step))
    slip = pb.AssignmentSlip(department="司法所", requirement="三日内组织双方调解")
    await api.Assign(intake_pb2.AssignRequest(case_id=case_id, actor=who, step=pb.Assigned(slip=slip)))
    await api.Acknowledge(intake_pb2.AcknowledgeRequest(case_id=case_id, actor="司法所"))
    return await api.Start(intake_pb2.StartRequest(case_id=case_id, actor="司法所", step=pb.Started(note="已联系")))


async def login(client: httpx.AsyncClient) -> dict[str, str]:
    reply = await client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


class Load:
    """Takes cases in, steps them and lists them over gRPC and HTTP until stopped; counts lists."""

    def __init__(self, api: intake_pb2_grpc.IntakeStub, http: httpx.AsyncClient, auth: dict[str, str]) -> None:
        self.api, self.http, self.auth = api, http, auth
        self.stop = asyncio.Event()
        self.lists = 0
        self.taken: list[str] = []

    async def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            case = (await self.api.SubmitCase(submit_request(TOWN))).case
            assert case.parties[0].phone == PHONE and not case.personal_note
            self.taken.append(case.id)
            step = pb.Triaged(category="邻里", response_class=pb.RESPONSE_CLASS_ROUTINE)
            stepped = await self.api.Triage(intake_pb2.TriageRequest(case_id=case.id, actor="值班员", step=step))
            assert stepped.parties[0].phone == PHONE, stepped.personal_note
            page = await self.api.ListCases(intake_pb2.ListCasesRequest())
            assert page.cases and not [c.id for c in page.cases if c.personal_note or not c.parties]
            listed = await self.http.get("/api/v1/cases", headers=self.auth)
            assert listed.status_code == 200 and listed.json()["items"], listed.text
            self.lists += 2


async def test_rotating_the_key_while_the_town_serves_reseals_every_stored_value_and_reads_never_fail(
    tmp_path: Path,
    nats_server: NatsServer,
    database_url: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FQ_PERSONAL_DATA_KEY", PERSONAL_DATA_KEY)  # what the CLI beside the node reads
    async with town_with_keyring(tmp_path, nats_server.url, database_url) as (local, ring, url):
        node = local[TOWN]
        async with (
            channel(node.grpc_address) as ch,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.http_port}") as http,
        ):
            api = intake_pb2_grpc.IntakeStub(ch)
            before = [(await api.SubmitCase(submit_request(TOWN))).case.id for _ in range(25)]
            started = await walk_to_started(api, before[0])
            assert set(stored_key_ids(url)["case_record"]) == {OLD}

            load = Load(api, http, await login(http))
            running = asyncio.create_task(load.run())
            try:
                args = ["keys", "rotate", "--code", TOWN, "--database", url, "--keyring", str(ring), "--no-reseal"]
                assert await asyncio.to_thread(cli.main, args) == 0
                new = json.loads(ring.read_text())["current"]
                assert new != OLD and {k["id"] for k in json.loads(ring.read_text())["keys"]} == {OLD, new}
                assert f"当前密钥已改为 {new}" in capsys.readouterr().out

                async def sealing_with_the_new_key() -> bool:
                    return bool(load.taken) and stored_key_ids(url)["case_record"].count(new) > 0

                await eventually(sealing_with_the_new_key, "the running town seals with the rotated key")

                class Interrupted(Exception):
                    pass

                def stop_after_two(progress: reseal.Progress) -> None:
                    if progress.scanned >= 10:
                        raise Interrupted

                db = Database(url)
                try:
                    with pytest.raises(Interrupted):  # stopped half-way, as by Ctrl-C
                        await asyncio.to_thread(
                            reseal.reseal, db, settings_keyring(ring), now=node.clock.now, batch=5,
                            on_batch=stop_after_two,
                        )  # fmt: skip
                finally:
                    db.close()
                resumed = ["keys", "reseal", "--code", TOWN, "--database", url, "--keyring", str(ring), "--batch", "5"]
                assert await asyncio.to_thread(cli.main, resumed) == 0
                await eventually(lambda: _true(load.lists >= 20), "the lists kept being answered meanwhile")
            finally:
                load.stop.set()
                await running  # re-raises any failed read or step of the load
            said = capsys.readouterr().out.splitlines()
            first = said[0]
            assert first.startswith(f"重新加密案件（密钥 {new}）：已检查 15 条"), first  # went on after the first 10
            assert said[-1].startswith(f"重新加密完成：当前密钥 {new}") and "旧密钥下已无存量数据" in said[-1]

            stored = stored_key_ids(url)
            assert len(stored["case_record"]) == len(before) + len(load.taken) == len(stored["case_event"])
            assert set(stored["case_record"]) == {new} and set(stored["case_event"]) == {new}
            for case_id in (*before, *load.taken[:3], *load.taken[-3:]):  # old and new cases read in full
                case = await api.GetCase(intake_pb2.GetCaseRequest(id=case_id))
                assert case.parties[0].phone == PHONE and case.location.address == "三组12号" and not case.personal_note
            events = await api.ListCaseEvents(intake_pb2.ListCaseEventsRequest(case_id=before[0]))
            assert events.events[0].received.case.parties[0].phone == PHONE
            progressed = await api.ReportProgress(
                intake_pb2.ReportProgressRequest(
                    case_id=started.id,
                    actor="司法所",
                    expected_version=started.version,
                    step=pb.Progress(note="调解中"),
                )
            )
            assert progressed.parties[0].phone == PHONE and progressed.version == started.version + 1

            listing = ["keys", "list", "--code", TOWN, "--database", url, "--keyring", str(ring)]
            assert await asyncio.to_thread(cli.main, listing) == 0
            lines = capsys.readouterr().out.splitlines()
            total = len(before) + len(load.taken)
            assert f"{new}  当前密钥  案件 {total} 条、受理事件 {total} 条、待发消息 0 条" in lines
            assert f"{OLD}  旧密钥  案件 0 条、受理事件 0 条、待发消息 0 条" in lines
            assert {("keys.rotate", new), ("keys.reseal", new)} <= set(await key_operations(node.ctx.db))  # type: ignore[union-attr]
            verdict = await node.ctx.db.read(lambda s: audit.examine(s, content=audited_content))  # type: ignore[union-attr]
            assert verdict.problems == [] and verdict.count > 0  # re-sealed rows are not edits


async def key_operations(db: Database) -> list[tuple[str, str]]:
    """(action, key id) of the key operations in the node's audit trail."""

    def read(s: Session) -> list[tuple[str, str]]:
        rows = s.exec(select(AuditRecord).where(col(AuditRecord.action).startswith("keys."))).all()
        return [(r.action, r.subject) for r in rows]

    return await db.read(read)


def settings_keyring(ring: Path) -> sealing.Keyring:
    return keyring.node_keyring(ring, PERSONAL_DATA_KEY)


async def _true(value: bool) -> bool:
    return value


async def eventually(check: Callable[[], object], what: str, within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.1)


def write_ring(path: Path, *raws: bytes) -> None:
    """A keyring file holding ``raws``, the last one current (as an operator might leave it)."""
    keys = sealing.Keys.of(*raws)
    keyring.write(path, keys, {})


async def test_a_case_under_a_key_the_town_lacks_is_listed_without_personal_data_and_a_step_on_it_is_recorded_once(
    tmp_path: Path, nats_server: NatsServer, database_url: Callable[[str], str]
) -> None:
    async with town_with_keyring(tmp_path, nats_server.url, database_url) as (local, ring, url):
        node = local[TOWN]
        old, stray = sealing.parse_key(PERSONAL_DATA_KEY), sealing.parse_key(sealing.new_key())
        async with (
            channel(node.grpc_address) as ch,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.http_port}") as http,
        ):
            api = intake_pb2_grpc.IntakeStub(ch)
            readable = (await api.SubmitCase(submit_request(TOWN))).case
            write_ring(ring, old, stray)  # a key the town will not keep

            last: list[pb.Case] = []

            async def sealed_with_stray() -> bool:  # once one is, every later one is too
                last.append((await api.SubmitCase(submit_request(TOWN))).case)
                return stored_key_ids(url)["case_record"].count(sealing.key_id(stray)) > 0

            await eventually(sealed_with_stray, "a case sealed with the stray key")
            started = await walk_to_started(api, last[-1].id)
            ring.unlink()  # the stray key is gone: only FQ_PERSONAL_DATA_KEY is left

            by_id: dict[str, pb.Case] = {}

            async def forgotten() -> bool:  # a running node reads its keyring again within a second
                page = await api.ListCases(intake_pb2.ListCasesRequest())  # the page does not fail
                by_id.update({c.id: c for c in page.cases})
                return bool(by_id[started.id].personal_note)

            await eventually(forgotten, "the town no longer holds the stray key")
            assert by_id[readable.id].parties[0].phone == PHONE and not by_id[readable.id].personal_note
            masked = by_id[started.id]
            assert not masked.parties and masked.location.address == "" and not masked.sealed_personal
            assert f"本节点未持有的密钥（编号 {sealing.key_id(stray)}）" in masked.personal_note
            assert masked.description and masked.status == pb.CASE_STATUS_IN_PROGRESS

            auth = await login(http)
            listed = await http.get("/api/v1/cases", headers=auth)
            assert listed.status_code == 200
            shown = {c["id"]: c for c in listed.json()["items"]}
            assert "本节点未持有的密钥" in shown[started.id]["personal_note"] and shown[started.id]["parties"] == []
            detail = await http.get(f"/api/v1/cases/{started.id}", headers=auth)
            assert detail.status_code == 200 and "本节点未持有的密钥" in detail.json()["personal_note"]

            request = intake_pb2.ReportProgressRequest(
                case_id=started.id, actor="司法所", expected_version=started.version, step=pb.Progress(note="已上门")
            )
            answer = await api.ReportProgress(request)  # committed, then not openable: success with the note
            assert answer.version == started.version + 1
            assert answer.personal_note.startswith(f"本步已记录（案件版本 {answer.version}）。")
            with pytest.raises(grpc.aio.AioRpcError) as retried:  # a retry of the same step is refused
                await api.ReportProgress(request)
            assert retried.value.code() is grpc.StatusCode.FAILED_PRECONDITION
            events = (await api.ListCaseEvents(intake_pb2.ListCaseEventsRequest(case_id=started.id))).events
            assert [e.WhichOneof("payload") for e in events].count("progress") == 1
            assert "本节点未持有的密钥" in events[0].received.case.personal_note

            by_http = await http.post(f"/api/v1/cases/{started.id}/progress", json={"note": "再次上门"}, headers=auth)
            assert by_http.status_code == 200 and by_http.json()["personal_note"].startswith("本步已记录")

            write_ring(ring, stray, old)  # the key comes back: the case opens again, no restart
            again = await api.GetCase(intake_pb2.GetCaseRequest(id=started.id))
            assert again.parties[0].phone == PHONE and not again.personal_note


@pytest.mark.slow
def test_rotating_the_key_while_the_demo_runs_leaves_nothing_under_the_old_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole demo county (one shared keyring file, a process per center) rotates while the
    simulator takes cases in and the centers work them; the county's list is read throughout."""
    monkeypatch.delenv("FQ_PERSONAL_DATA_KEY", raising=False)  # the operator's shell: the keyring alone
    base, state = free_base(), tmp_path / "state"
    ring = state / "keyring.json"
    codes = [n.code for n in sorted(load_topology(TOPOLOGY).nodes, key=lambda n: -n.tier)]  # villages first
    urls = {code: f"sqlite:///{state / 'data' / f'{code}.db'}" for code in codes}
    demo = start_demo(base, state)
    reads: list[int] = []
    stop_reading = threading.Event()
    try:
        wait_healthy(base, demo)
        auth = {"Authorization": f"Bearer {demo_token(base)}"}
        cases = f"http://127.0.0.1:{base}/api/v1/cases"

        def first_cases() -> list[str]:
            return [c["id"] for c in httpx.get(cases, headers=auth, timeout=10).json()["items"]]

        deadline = time.monotonic() + 60
        while len(first_cases()) < 5:
            assert time.monotonic() < deadline, "the county received no cases"
            time.sleep(0.5)
        before = first_cases()
        old = json.loads(ring.read_text())["current"]

        def read_lists() -> None:
            while not stop_reading.is_set():
                reads.append(httpx.get(cases, headers=auth, timeout=10).status_code)
                time.sleep(0.2)

        reader = threading.Thread(target=read_lists)
        reader.start()
        rotate = ["keys", "rotate", "--code", "371702", "--keyring", str(ring), "--database", urls["371702"]]
        assert cli.main([*rotate, "--no-reseal"]) == 0
        new = json.loads(ring.read_text())["current"]
        assert new != old

        def under_old() -> dict[str, int]:
            found = {code: stored_key_ids(url) for code, url in urls.items()}
            return {code: sum(ids.count(old) for ids in by.values()) for code, by in found.items()}

        deadline = time.monotonic() + 180  # events sealed before the rotation may still be on their way up
        while left := {code: n for code, n in under_old().items() if n}:
            assert time.monotonic() < deadline, f"still under the old key: {left}"
            for code in left:
                cli.main(["keys", "reseal", "--code", code, "--keyring", str(ring), "--database", urls[code]])
        stop_reading.set()
        reader.join()
        after = [c for c in first_cases() if c not in before]
        for case_id in (*before[:3], *after[:3]):  # old and new cases read in full at the county
            detail = httpx.get(f"{cases}/{case_id}", headers=auth, timeout=10).json()
            assert detail["parties"] and detail["parties"][0]["name"] and not detail.get("personal_note"), detail
        assert after, "no case was taken in after the rotation"
    finally:
        stop_reading.set()
        out = stop(demo)
    assert len(reads) > 5 and set(reads) == {200}, reads
    assert demo.returncode == 0, out


def demo_token(base: int) -> str:
    reply = httpx.post(
        f"http://127.0.0.1:{base}/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}, timeout=5
    )
    assert reply.status_code == 200, reply.text
    token: str = reply.json()["access_token"]
    return token


def test_rotate_refuses_to_start_a_keyring_without_the_nodes_present_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FQ_PERSONAL_DATA_KEY", raising=False)
    ring = tmp_path / "keyring.json"
    args = ["keys", "rotate", "--code", TOWN, "--keyring", str(ring), "--database", f"sqlite:///{tmp_path / 't.db'}"]
    assert cli.main(args) == 1
    assert "新密钥环须包含本节点现有的密钥" in capsys.readouterr().err and not ring.exists()
    assert cli.main(["keys", "reseal", "--code", TOWN, "--database", f"sqlite:///{tmp_path / 't.db'}"]) == 1
    assert "未配置个人信息密钥" in capsys.readouterr().err
