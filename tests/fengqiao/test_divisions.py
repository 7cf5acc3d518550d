from __future__ import annotations

import pytest

from fengqiao.divisions import (
    Route,
    Tier,
    case_subject,
    down_subject,
    event_subject,
    events_stream,
    is_within,
    own_case_subjects,
    own_up_subjects,
    parent_code,
    route_of,
    subtree_subjects,
    tier_of,
)
from fengqiao.errors import InvalidArgument


def test_code_length_gives_the_tier() -> None:
    assert tier_of("371702") is Tier.COUNTY
    assert tier_of("371702101") is Tier.TOWN
    assert tier_of("371702101001") is Tier.VILLAGE


@pytest.mark.parametrize("code", ["", "37170", "3717021010", "37170a101", "371702101001 "])
def test_malformed_codes_are_refused_in_chinese(code: str) -> None:
    with pytest.raises(InvalidArgument, match="行政区划代码"):
        tier_of(code)


def test_parent_is_the_prefix_of_the_tier_above() -> None:
    assert parent_code("371702101001") == "371702101"
    assert parent_code("371702101") == "371702"
    assert parent_code("371702") is None
    assert is_within("371702101001", "371702")
    assert not is_within("371702102001", "371702101")


def test_subjects_keep_a_fixed_token_layout_so_permissions_are_wildcards() -> None:
    assert case_subject("371702101001", "received") == "fq.371702.371702101.371702101001.case.received"
    assert case_subject("371702101", "received") == "fq.371702.371702101._.case.received"
    assert case_subject("371702", "received") == "fq.371702._._.case.received"
    assert own_case_subjects("371702101") == "fq.371702.371702101._.case.>"
    assert subtree_subjects("371702101") == "fq.371702.371702101.>"
    assert subtree_subjects("371702") == "fq.371702.>"
    assert subtree_subjects("371702101001") == "fq.371702.371702101.371702101001.>"
    assert subtree_subjects("371702101", kind="case") == "fq.371702.371702101.*.case.>"
    assert subtree_subjects("371702", kind="project") == "fq.371702.*.*.project.>"
    assert own_up_subjects("371702101")[1] == "fq.371702.371702101._.project.>"


def test_stream_names_contain_no_dots_or_wildcards() -> None:
    name = events_stream("371702101001")
    assert name == "FQ_EVENTS_371702101001"
    assert not set(name) & {".", "*", ">"}


def test_down_filters_select_what_is_sent_to_a_node_or_below_it() -> None:
    from fengqiao.divisions import down_filter, down_subject

    sent = down_subject("371702", "371702101001", "case", "escalation_accepted")
    assert sent == "fq.371702._._.down.371702101.371702101001.case.escalation_accepted"
    assert down_filter("371702101001") == "fq.*.*.*.down.371702101.371702101001.>"
    assert down_filter("371702101", sender="371702", kind="case") == "fq.371702._._.down.371702101.*.case.>"
    assert (
        down_filter("371702101001", sender="371702101", kind="case")
        == "fq.371702.371702101._.down.371702101.371702101001.case.>"
    )


def test_a_subject_is_read_back_as_its_sender_addressee_kind_and_type() -> None:
    assert route_of(event_subject("371702101001", "case", "received")) == Route(
        "371702101001", None, "case", "received"
    )
    assert route_of(event_subject("371702", "directive", "issued")).sender == "371702"
    assert route_of(down_subject("371702", "371702101", "joint", "opened")) == Route(
        "371702", "371702101", "joint", "opened"
    )
    assert route_of(down_subject("371702101", "371702101001", "case", "closed")) == Route(
        "371702101", "371702101001", "case", "closed"
    )


@pytest.mark.parametrize(
    "subject",
    [
        "fq.371702._._.case",  # too short
        "fq.371702._.371702101001.case.received",  # a village without its town
        "fq.371702.371703101._.case.received",  # a town of another county
        "fq.371702._._.feed.x.y.z.w",  # nine tokens, not sent down
        "fq.371702._._.down.371703101._.case.closed",  # down to another county's town
        "xx.371702._._.case.received",
    ],
)
def test_a_subject_of_another_layout_names_no_sender(subject: str) -> None:
    with pytest.raises(InvalidArgument, match="主题"):
        route_of(subject)
