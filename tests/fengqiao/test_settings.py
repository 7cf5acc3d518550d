"""Node settings from the environment: the case vocabulary and the services, as lists."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError

from fengqiao.cases.vocabulary import DEFAULT_CATEGORIES, DEFAULT_CHANNELS, Vocabulary
from fengqiao.security import keyring, sealing
from fengqiao.settings import ALL_SERVICES, NodeSettings
from harness.county import PERSONAL_DATA_KEY, TOKEN_SECRET


def settings() -> NodeSettings:
    """The node's settings, the rest from the environment."""
    given = {"node_code": "371702", "topology_file": "t.yaml", "token_secret": TOKEN_SECRET}
    return NodeSettings(**given, personal_data_key=PERSONAL_DATA_KEY)  # type: ignore[arg-type]


def test_by_default_a_node_knows_the_shared_categories_and_channels_and_runs_every_service() -> None:
    node = settings()
    assert (node.categories, node.channels, node.services) == (DEFAULT_CATEGORIES, DEFAULT_CHANNELS, ALL_SERVICES)
    assert node.vocabulary() == Vocabulary()


@pytest.mark.parametrize(
    "value",
    [
        ",".join([*DEFAULT_CATEGORIES, "网络诈骗"]),
        "、".join([*DEFAULT_CATEGORIES, "网络诈骗"]) + "，",
        '["' + '", "'.join([*DEFAULT_CATEGORIES, "网络诈骗"]) + '"]',
    ],
)
def test_a_county_adds_a_category_as_a_comma_separated_or_json_list(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FQ_CATEGORIES", value)
    assert settings().categories == (*DEFAULT_CATEGORIES, "网络诈骗")
    assert settings().vocabulary().categories[-1] == "网络诈骗"


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("FQ_CATEGORIES", "", "at least one"),
        ("FQ_CATEGORIES", "邻里,邻里,其它", "邻里 more than once"),
        ("FQ_CHANNELS", '["网格员上报", " "]', "blank"),
        ("FQ_CHANNELS", '["网格员上报"', "not a JSON list"),
    ],
)
def test_an_empty_repeated_or_malformed_vocabulary_is_refused_at_start_up(
    name: str, value: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=problem):
        settings()


@pytest.mark.parametrize(
    ("value", "services"),
    [("intake", ("intake",)), ("intake, routing", ("intake", "routing")), ('["routing"]', ("routing",))],
)
def test_the_services_of_a_process_come_as_text_or_json(
    value: str, services: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FQ_SERVICES", value)
    assert settings().services == services


def test_a_node_needs_its_personal_data_key_or_a_keyring_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FQ_PERSONAL_DATA_KEY", raising=False)
    monkeypatch.delenv("FQ_PERSONAL_KEYRING", raising=False)
    given = {"node_code": "371702", "topology_file": "t.yaml", "token_secret": TOKEN_SECRET}
    with pytest.raises(ValidationError, match="FQ_PERSONAL_DATA_KEY / FQ_PERSONAL_KEYRING: 未配置个人信息密钥"):
        NodeSettings(**given)  # type: ignore[arg-type]
    ring = tmp_path / "keyring.json"
    with pytest.raises(ValidationError, match="不存在，且未设置 FQ_PERSONAL_DATA_KEY"):
        NodeSettings(**given, personal_keyring=ring)  # type: ignore[arg-type]
    raw = sealing.parse_key(sealing.new_key())
    keyring.rotate(ring, raw, before=None, now=dt.datetime.now(dt.UTC))
    node = NodeSettings(**given, personal_keyring=ring)  # type: ignore[arg-type]
    assert node.keyring().current_id == sealing.key_id(raw)
    ring.write_text("{}")
    with pytest.raises(ValidationError, match=r"密钥环文件 .* 无法读取"):
        NodeSettings(**given, personal_keyring=ring)  # type: ignore[arg-type]
