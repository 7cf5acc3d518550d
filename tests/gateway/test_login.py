"""Logging in over HTTP: an account whose password was hashed with the earlier scrypt scheme
logs in and is rehashed with Argon2id; wrong passwords and unknown accounts get one answer."""

from __future__ import annotations

import httpx
import pytest

from fengqiao.security.records import User
from harness.county import LocalCounty
from tests.fengqiao.security.test_passwords import old_scrypt_hash

VILLAGE = "371702101001"
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@sqlite_only
async def test_an_old_scrypt_account_logs_in_and_is_rehashed_with_argon2id(village: LocalCounty) -> None:
    node = village[VILLAGE]
    assert node.ctx is not None
    db = node.ctx.db
    old = old_scrypt_hash("Old-scheme-pw-01")
    await db.run(lambda s: s.add(User(username="laowang", password_hash=old, role="duty_officer", node_code=VILLAGE)))

    async def stored() -> str:
        user = await db.read(lambda s: s.get(User, "laowang"))
        assert user is not None
        return user.password_hash

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.http_port}") as client:

        async def login(username: str, password: str) -> httpx.Response:
            return await client.post("/api/v1/auth/token", data={"username": username, "password": password})

        for username, password in (("laowang", "Old-scheme-pw-02"), ("nobody", "Old-scheme-pw-01")):
            refused = await login(username, password)
            assert refused.status_code == 401 and refused.json()["detail"] == "用户名或密码错误"
        assert await stored() == old  # a failed login changes nothing

        assert (await login("laowang", "Old-scheme-pw-01")).status_code == 200
        rehashed = await stored()
        assert rehashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        again = await login("laowang", "Old-scheme-pw-01")
        assert again.status_code == 200 and await stored() == rehashed  # current hashes are left alone
        wrong = await login("laowang", "Old-scheme-pw-02")
        assert wrong.status_code == 401 and wrong.json()["detail"] == "用户名或密码错误"
