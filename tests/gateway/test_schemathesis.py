"""schemathesis against a live node's /openapi.json, logged in as its administrator: whatever the
generated requests, the node answers without a server error (no 5xx)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

from harness.county import ADMIN_PASSWORD, LocalCounty

VILLAGE = "371702101001"
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_schemathesis_finds_no_server_error(village: LocalCounty, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{village[VILLAGE].http_port}"
    async with httpx.AsyncClient(base_url=base) as client:
        login = await client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        token = login.json()["access_token"]
    command = [
        str(SCHEMATHESIS), "run", f"{base}/openapi.json",
        "--checks", "not_a_server_error",
        "--header", f"Authorization: Bearer {token}",
        "--max-examples", "5", "--seed", "9", "--generation-database", "none",
        "--request-timeout", "20", "--no-color",
        "--report", "junit", "--report-dir", str(tmp_path / "report"),
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )  # the node keeps serving on this event loop while schemathesis runs
    output, _ = await asyncio.wait_for(process.communicate(), timeout=240)
    text = output.decode("utf-8", errors="replace")
    print(text[-3000:])
    assert process.returncode == 0, text[-6000:]
