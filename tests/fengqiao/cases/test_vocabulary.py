"""The case vocabulary: the shared categories (GB/T 31000 "9+X") and channels, and its checks."""

from __future__ import annotations

import pytest

from fengqiao.cases.vocabulary import DEFAULT_CATEGORIES, DEFAULT_CHANNELS, Vocabulary
from fengqiao.errors import InvalidArgument


def test_the_shared_vocabulary_has_seventeen_categories_ending_with_other_and_nine_channels() -> None:
    assert len(DEFAULT_CATEGORIES) == len(set(DEFAULT_CATEGORIES)) == 17
    assert DEFAULT_CATEGORIES[-1] == "其它"
    assert len(DEFAULT_CHANNELS) == len(set(DEFAULT_CHANNELS)) == 9
    assert Vocabulary() == Vocabulary(DEFAULT_CATEGORIES, DEFAULT_CHANNELS)


@pytest.mark.parametrize(("category", "message"), [("", "案件类别必填"), ("网络诈骗", "未知的案件类别“网络诈骗”")])
def test_a_missing_or_unknown_category_is_refused_in_chinese(category: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        Vocabulary().check_category(category)
    assert caught.value.field == "category" and caught.value.message.endswith(message)


def test_a_county_may_add_its_own_category() -> None:
    county = Vocabulary(categories=(*DEFAULT_CATEGORIES, "网络诈骗"))
    county.check_category("网络诈骗")
    county.check_category("邻里")


@pytest.mark.parametrize(("channel", "message"), [("", "来源渠道必填"), ("飞鸽传书", "未知的来源渠道“飞鸽传书”")])
def test_a_missing_or_unknown_channel_is_refused_in_chinese(channel: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        Vocabulary().check_channel(channel)
    assert caught.value.field == "channel" and caught.value.message.endswith(message)
    Vocabulary().check_channel("12345转办")
