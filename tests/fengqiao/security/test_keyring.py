"""A node's keyring file: what ``fengqiao keys rotate`` writes and every process of the node reads
again when it changes."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from pathlib import Path

import pytest

from fengqiao.security import keyring, sealing
from fengqiao.v1 import case_pb2 as pb

NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)


def a_key() -> bytes:
    return sealing.parse_key(sealing.new_key())


def touch_later(path: Path) -> None:
    """Move the file's time on, as a later write would (some file systems keep coarse times)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_rotate_keeps_every_older_key_and_the_environments_key_and_makes_the_new_one_current(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "keyring.json"
    env, first, second = a_key(), a_key(), a_key()
    keys = keyring.rotate(path, first, before=sealing.Keys.of(env), now=NOW)
    assert keys.current == sealing.key_id(first) and set(keys.by_id) == {sealing.key_id(env), sealing.key_id(first)}
    assert path.stat().st_mode & 0o777 == 0o600
    keys = keyring.rotate(path, second, before=None, now=NOW)
    assert keys.current == sealing.key_id(second) and len(keys.by_id) == 3
    assert keyring.rotate(path, second, before=None, now=NOW) == keys  # the same key again: nothing changes
    read, added = keyring.read(path)
    assert read == keys and added[sealing.key_id(second)] == NOW.isoformat()


def test_a_keyring_file_names_its_keys_and_refuses_a_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    raw = a_key()
    keyring.write(path, sealing.Keys.of(raw), {})
    document = json.loads(path.read_text())
    document["keys"][0]["id"] = "00000000"
    path.write_text(json.dumps(document))
    with pytest.raises(keyring.KeyringError, match="与密钥不符"):
        keyring.read(path)
    document["keys"][0] |= {"id": sealing.key_id(raw), "key": base64.b64encode(b"short").decode()}
    path.write_text(json.dumps(document))
    with pytest.raises(keyring.KeyringError, match="格式不对"):
        keyring.read(path)
    path.write_text(json.dumps({"current": "12345678", "keys": []}))
    with pytest.raises(keyring.KeyringError, match="当前密钥 12345678 不在其中"):
        keyring.read(path)
    with pytest.raises(keyring.KeyringError, match="未配置个人信息密钥"):
        keyring.KeyringFile(None, None)
    with pytest.raises(keyring.KeyringError, match="不存在，且未设置 FQ_PERSONAL_DATA_KEY"):
        keyring.KeyringFile(tmp_path / "missing.json", None)


def test_a_node_follows_its_keyring_file_as_it_changes_and_keeps_the_last_good_keys_over_a_broken_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keyring.json"
    env, rotated = a_key(), a_key()
    source = keyring.KeyringFile(path, env)
    assert source() == sealing.Keys.of(env)  # no file yet: the environment's key alone
    keyring.rotate(path, rotated, before=None, now=NOW)
    assert source() == sealing.Keys.of(env, rotated)  # the file, with the environment's key kept as an older one
    path.write_text("{ half written")
    touch_later(path)
    assert source() == sealing.Keys.of(env, rotated)
    path.unlink()
    assert source() == sealing.Keys.of(env)


def test_a_ring_seals_with_a_rotated_key_within_its_recheck_and_opens_a_key_it_just_got_at_once(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    env, rotated = a_key(), a_key()
    ring = sealing.Keyring(keyring.KeyringFile(path, env), recheck_s=0)
    elsewhere = sealing.Keyring.of(env, rotated)  # another node that rotated first
    case = sealing_case()
    elsewhere.seal(case)
    assert "未持有的密钥" in ring.opened(case).personal_note
    keyring.rotate(path, rotated, before=None, now=NOW)
    assert ring.opened(case).parties[0].name == "张三"  # read again at once for the unknown key
    mine = sealing_case()
    ring.seal(mine)
    assert sealing.sealed_key_id(mine.sealed_personal) == sealing.key_id(rotated)


def sealing_case() -> pb.Case:
    return pb.Case(
        origin_node="371702101",
        receipt_no="371702101-20261202-0001",
        parties=[pb.Party(name="张三", phone="13812345678")],
        location=pb.Location(address="三组12号"),
    )
