"""``fengqiao backup`` and ``fengqiao restore`` with real parts: a village node serving requests
while the backup runs, the ``fengqiao`` command as an operator runs it, a restore onto an empty
box (a new data directory, an empty database, a fresh nats-server) and the node started again,
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy

from bench.recompute import expected, observed
from devtools.natsserver import NatsServer
from fengqiao import dbcopy
from fengqiao.clock import CHINA_TZ
from fengqiao.db import Database, engine_url
from harness.county import ADMIN_PASSWORD, LocalCounty, small_county
from host.node import figure_sources
from services.federation import rules, snapshot, views
from tests.conftest import running_county
from tests.fengqiao.test_migrations import raw_logs
from tests.gateway.test_api import CASE

VILLAGE = "371702101001"
PNG = b"\x89PNG\r\n\x1a\n"


def fengqiao(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "host.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


async def _fengqiao_async(*args: str | Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "host.cli", *map(str, args),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 300)
    return process.returncode or 0, out.decode(), err.decode()


async def _client(node_http_port: int) -> httpx.AsyncClient:
    base = f"http://127.0.0.1:{node_http_port}"
    async with httpx.AsyncClient(base_url=base) as anonymous:
        login = await anonymous.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    return httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


async def _take_cases(client: httpx.AsyncClient, taken: list[str], stop: asyncio.Event) -> None:
    """Take cases in at the village until ``stop``: each with a photo of its own, then triaged."""
    while not stop.is_set():
        n = len(taken)
        photo = await client.post("/api/v1/attachments", files={"file": (f"{n}.png", PNG + n.to_bytes(4), "image/png")})
        assert photo.status_code == 201, photo.text
        created = await client.post("/api/v1/cases", json={**CASE, "client_request_id": f"backup-{n:05d}"})
        assert created.status_code == 201, created.text
        case_id = created.json()["case"]["id"]
        triaged = await client.post(f"/api/v1/cases/{case_id}/triage", json={"category": "邻里", "response_class": 1})
        assert triaged.status_code == 200, triaged.text
        taken.append(case_id)


async def _wait_for(what: str, ready: Callable[[], bool], timeout_s: float = 120.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not ready():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _cases_of(client: httpx.AsyncClient) -> dict[str, tuple[str, list[str]]]:
    """Every case of the node over the API: its status and its events' ids."""
    listed = await client.get("/api/v1/cases", params={"page_size": 500})
    assert listed.status_code == 200, listed.text
    assert not listed.json()["next_page_token"]
    found = {}
    for item in listed.json()["items"]:
        events = (await client.get(f"/api/v1/cases/{item['id']}/events")).json()["items"]
        found[item["id"]] = (item["status"], [e["id"] for e in events])
    return found


def _incomplete_cases(url: str) -> list[str]:
    """Cases whose stored events are not exactly 1..version (a torn copy would have some)."""
    engine = sqlalchemy.create_engine(engine_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sqlalchemy.text(
                    "SELECT c.id, c.version, count(e.id), coalesce(min(e.seq), 0), coalesce(max(e.seq), 0) "
                    "FROM case_record c LEFT JOIN case_event e ON e.case_id = c.id GROUP BY c.id, c.version"
                )
            ).all()
    finally:
        engine.dispose()
    assert rows, "the backup holds no case"
    return [row[0] for row in rows if not (row[1] == row[2] == row[4] and row[3] == 1)]


def _figures_and_recompute(url: str) -> tuple[dict[str, object], dict[str, object]]:
    """The village's figures this month from its maintained facts, and recomputed from its events."""
    now = dt.datetime.now(dt.UTC)
    period = rules.parse_period(f"{now.astimezone(CHINA_TZ):%Y-%m}")
    db = Database(url)
    try:
        snap = db.transaction(
            lambda s: snapshot.take(
                s, topology=small_county(towns=1, villages=1), code=VILLAGE, period=period, now=now,
                stale_after=dt.timedelta(days=7), sources=figure_sources(),
            )
        )  # fmt: skip
    finally:
        db.close()
    figures = observed(views.node_stats(snap, VILLAGE, include_children=False))
    return figures, expected(raw_logs(url), VILLAGE, period, now=now)


@pytest.fixture
async def fresh_nats(tmp_path: Path) -> AsyncIterator[NatsServer]:
    """The new box's own nats-server."""
    server = NatsServer(store_dir=tmp_path / "new-box-nats").start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_backup_taken_while_the_village_takes_cases_restores_on_an_empty_box(
    tmp_path: Path, nats_server: NatsServer, fresh_nats: NatsServer, database_url: Callable[[str], str]
) -> None:
    taken: list[str] = []
    live = tmp_path / "live.tar"
    quiet = tmp_path / "quiet.tar"
    async with running_county(tmp_path / "old-box", nats_server.url, database_url, VILLAGE, towns=1, villages=1) as old:
        node = old[VILLAGE]
        url = node.settings.resolved_database_url()
        data_dir = node.settings.data_dir
        async with await _client(node.http_port) as client:
            stop = asyncio.Event()
            writer = asyncio.create_task(_take_cases(client, taken, stop))
            await _wait_for("the first cases", lambda: len(taken) >= 5)
            before = len(taken)
            code, out, err = await _fengqiao_async(
                "backup", "--code", VILLAGE, "--database", url, "--data-dir", data_dir, "--out", live
            )
            during = len(taken)
            await _wait_for("more cases after the backup", lambda: len(taken) >= during + 3)
            stop.set()
            await writer
            assert code == 0, err
            assert "已备份到" in out and "密钥不在备份中" in out

            with tarfile.open(live) as tar:
                manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
            in_backup = manifest["counts"]["case_record"]
            assert before < during  # the node took cases while the backup ran
            # (a case is listed in `taken` once triaged: the last one may be in the backup already)
            assert before <= in_backup <= during + 1, (before, in_backup, during)
            assert manifest["node"] == VILLAGE and manifest["tier"] == "village"
            # one photo a case, uploaded before it: the next case's photo may be in the backup already
            assert in_backup <= manifest["counts"]["attachment"] <= in_backup + 1
            assert manifest["schema_revision"]
            # the database and the photos the snapshot records; no key of the node
            assert {m.split("/")[0] for m in manifest["members"]} == {"attachments", f"database.{_kind(url)}"}
            photos = sum(m.startswith("attachments/") for m in manifest["members"])
            assert photos == manifest["counts"]["attachment"]

            original = await _cases_of(client)
            assert set(taken) <= set(original)
            stats = await client.get(f"/api/v1/nodes/{VILLAGE}/stats", params={"period": _this_month()})
        quiet_done = fengqiao("backup", "--code", VILLAGE, "--database", url, "--data-dir", data_dir, "--out", quiet)
        assert quiet_done.returncode == 0, quiet_done.stderr

    # The backup taken under writes restores to a consistent store: every case has all its events.
    live_url = database_url("restored_live")
    restored = fengqiao("restore", live, "--database", live_url, "--data-dir", tmp_path / "live-box")
    assert restored.returncode == 0, restored.stderr
    assert _incomplete_cases(live_url) == []
    figures, recomputed = _figures_and_recompute(live_url)
    assert figures == recomputed and figures["received"] == in_backup
    verified = fengqiao("audit", "verify", "--database", live_url)
    assert verified.returncode == 0 and "审计链完整" in verified.stdout, verified.stdout + verified.stderr

    # The quiet backup on a new, empty box: the node starts and answers the same cases and figures.
    new_box = tmp_path / "new-box"
    new_url = database_url("restored_quiet")
    restored = fengqiao("restore", quiet, "--code", VILLAGE, "--database", new_url, "--data-dir", new_box / "data")
    assert restored.returncode == 0, restored.stderr
    assert "已恢复节点 371702101001" in restored.stdout
    verified = fengqiao("audit", "verify", "--database", new_url)
    assert verified.returncode == 0 and "审计链完整" in verified.stdout, verified.stdout + verified.stderr
    new = LocalCounty(small_county(towns=1, villages=1), new_box, fresh_nats.url, lambda _code: new_url)
    await new.start(VILLAGE)
    try:
        async with await _client(new[VILLAGE].http_port) as client:
            assert await _cases_of(client) == original
            again = await client.get(f"/api/v1/nodes/{VILLAGE}/stats", params={"period": _this_month()})
            assert again.status_code == stats.status_code == 200
            figures, figures_again = stats.json(), again.json()
            assert int(figures["received"]) == len(original)
            assert figures_again.pop("generated_at") and figures.pop("generated_at")
            assert figures_again == figures
            sha = manifest_attachment(quiet)
            photo = await client.get(f"/api/v1/attachments/{sha}")
            assert photo.status_code == 200 and photo.content.startswith(PNG)
    finally:
        await new.stop()


def manifest_attachment(archive: Path) -> str:
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    return next(m.rsplit("/", 1)[1] for m in manifest["members"] if m.startswith("attachments/"))


def _kind(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "pgdump"


def _this_month() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m")


@pytest.fixture
def empty_node_backup(tmp_path: Path, database_url: Callable[[str], str]) -> tuple[Path, str]:
    """A backup of a node whose database has the schema and no rows; and that database."""
    url = database_url("source")
    assert fengqiao("db", "upgrade", "--database", url).returncode == 0
    archive = tmp_path / "empty.tar"
    done = fengqiao("backup", "--code", VILLAGE, "--database", url, "--data-dir", tmp_path / "source", "--out", archive)
    assert done.returncode == 0, done.stderr
    return archive, url


def test_restore_refuses_a_database_that_is_not_empty(
    tmp_path: Path, empty_node_backup: tuple[Path, str], database_url: Callable[[str], str]
) -> None:
    archive, source_url = empty_node_backup
    refused = fengqiao("restore", archive, "--database", source_url, "--data-dir", tmp_path / "box")
    assert refused.returncode == 1
    assert "目标数据库不是空的" in refused.stderr and "拒绝覆盖" in refused.stderr
    assert not (tmp_path / "box" / "attachments").exists()


def test_restore_refuses_an_attachment_folder_that_is_not_empty(
    tmp_path: Path, empty_node_backup: tuple[Path, str], database_url: Callable[[str], str]
) -> None:
    archive, _ = empty_node_backup
    stray = tmp_path / "box" / "attachments" / VILLAGE / "ab" / "cd" / "abcd"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"x")
    url = database_url("target")
    refused = fengqiao("restore", archive, "--database", url, "--data-dir", tmp_path / "box")
    assert refused.returncode == 1 and "附件目录" in refused.stderr and "不是空的" in refused.stderr
    engine = sqlalchemy.create_engine(engine_url(url))
    try:
        with engine.connect() as conn:
            assert sqlalchemy.inspect(conn).get_table_names() == []  # nothing restored
    finally:
        engine.dispose()


def test_restore_refuses_another_nodes_backup_unless_told(
    tmp_path: Path, empty_node_backup: tuple[Path, str], database_url: Callable[[str], str]
) -> None:
    archive, _ = empty_node_backup
    other = "371702101002"
    url = database_url("other")
    refused = fengqiao("restore", archive, "--code", other, "--database", url, "--data-dir", tmp_path / "box")
    assert refused.returncode == 1
    assert f"备份属于节点 {VILLAGE}，不是本节点 {other}" in refused.stderr and "--allow-other-node" in refused.stderr
    told = fengqiao(
        "restore", archive, "--code", other, "--database", url, "--data-dir", tmp_path / "box", "--allow-other-node"
    )
    assert told.returncode == 0, told.stderr
    assert f"已恢复节点 {other}" in told.stdout


def test_restore_refuses_a_damaged_backup(tmp_path: Path, empty_node_backup: tuple[Path, str]) -> None:
    archive, _ = empty_node_backup
    damaged = tmp_path / "damaged.tar"
    with tarfile.open(archive) as source, tarfile.open(damaged, "w") as target:
        for member in source.getmembers():
            content = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.startswith("database."):
                content = content[:-1] + bytes([content[-1] ^ 1])
            target.addfile(member, io.BytesIO(content))
    refused = fengqiao("restore", damaged, "--data-dir", tmp_path / "box")
    assert refused.returncode == 1 and "备份文件已损坏" in refused.stderr and "sha256" in refused.stderr
    not_a_backup = tmp_path / "notes.tar"
    with tarfile.open(not_a_backup, "w") as tar:
        tar.add(damaged, arcname="notes.txt")
    refused = fengqiao("restore", not_a_backup, "--data-dir", tmp_path / "box")
    assert refused.returncode == 1 and "不是枫桥备份文件" in refused.stderr
    assert not (tmp_path / "box").exists()


def test_backup_never_overwrites_a_file_and_restore_keeps_the_database_kind(
    tmp_path: Path, empty_node_backup: tuple[Path, str]
) -> None:
    archive, url = empty_node_backup
    before = archive.read_bytes()
    again = fengqiao("backup", "--code", VILLAGE, "--database", url, "--data-dir", tmp_path / "src", "--out", archive)
    assert again.returncode == 1 and "已存在，不覆盖" in again.stderr
    assert archive.read_bytes() == before
    other_kind = (
        "postgresql://postgres@127.0.0.1:5432/fq_never_made"
        if url.startswith("sqlite")
        else f"sqlite:///{tmp_path}/x.db"
    )
    refused = fengqiao("restore", archive, "--database", other_kind, "--data-dir", tmp_path / "box")
    assert refused.returncode == 1 and "不能恢复到" in refused.stderr


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_postgresql_backup_names_the_missing_client(
    tmp_path: Path, database_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = database_url("client")
    assert fengqiao("db", "upgrade", "--database", url).returncode == 0
    archive = tmp_path / "made-with-the-client.tar"
    assert fengqiao("backup", "--code", VILLAGE, "--database", url, "--out", archive).returncode == 0
    monkeypatch.setenv("FQ_PG_BIN_DIR", str(tmp_path / "no-client-here"))
    refused = fengqiao("backup", "--code", VILLAGE, "--database", url, "--out", tmp_path / "x.tar")
    assert refused.returncode == 1 and "找不到 pg_dump" in refused.stderr and "postgresql-client" in refused.stderr
    assert not (tmp_path / "x.tar").exists()
    empty = database_url("empty")
    refused = fengqiao("restore", archive, "--database", empty, "--data-dir", tmp_path / "box")
    assert refused.returncode == 1 and "找不到 pg_restore" in refused.stderr
    assert dbcopy.table_names(empty) == []


async def test_a_backup_refuses_an_attachment_whose_file_is_damaged(tmp_path: Path, village: LocalCounty) -> None:
    node = village[VILLAGE]
    async with await _client(node.http_port) as client:
        photo = await client.post("/api/v1/attachments", files={"file": ("现场.png", PNG + b"scene", "image/png")})
        assert photo.status_code == 201, photo.text
    sha = photo.json()["sha256"]
    stored = node.settings.data_dir / "attachments" / VILLAGE / sha[:2] / sha[2:4] / sha
    stored.write_bytes(PNG + b"rotted")
    url, out = node.settings.resolved_database_url(), tmp_path / "b.tar"
    refused = await _fengqiao_async(
        "backup", "--code", VILLAGE, "--database", url, "--data-dir", node.settings.data_dir, "--out", out
    )
    assert refused[0] == 1 and "附件文件内容与其 sha256 不符" in refused[2] and sha in refused[2]
    assert not out.exists() and not [name for name in os.listdir(tmp_path) if name.startswith(".b.tar")]
