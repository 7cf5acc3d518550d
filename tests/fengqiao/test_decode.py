"""The one decode step of every inbox handler: parse, required ids, the sender read from the
subject, checks — and the domain errors of applying a message mapped once to "dead letter" or
"not yet"."""

from __future__ import annotations

import inspect

import pytest
from nats.aio.msg import Msg
from sqlmodel import Session

from fengqiao import decode, errors, inbox, writers
from fengqiao.decode import Decoder, Envelope, receive, written_above, written_within
from fengqiao.divisions import down_subject, event_subject
from fengqiao.errors import BadMessage, NotYet
from fengqiao.v1 import case_pb2 as pb

COUNTY, TOWN, VILLAGE, OTHER_VILLAGE = "371702", "371702101", "371702101001", "371702102001"
DECODE = Decoder(pb.CaseEvent, "案件事件", required=("id", "case_id", "seq"))


def delivered(
    event: pb.CaseEvent | bytes, subject: str = event_subject(VILLAGE, "case", "received"), *, source: str = ""
) -> Msg:
    """A message as a consumer gets it; ``source``: the stream this node's server sourced it from."""
    data = event if isinstance(event, bytes) else event.SerializeToString()
    headers = {"Nats-Stream-Source": f"{source}:aXE34wTU 7 > > {subject} iMnPHnOa"} if source else None
    return Msg(_client=None, subject=subject, data=data, headers=headers)  # type: ignore[arg-type]


def event(node: str = VILLAGE, **fields: object) -> pb.CaseEvent:
    values: dict[str, object] = {"id": "e1", "case_id": "c1", "seq": 1, "node": node, "progress": pb.Progress()}
    return pb.CaseEvent(**{**values, **fields})  # type: ignore[arg-type]


def test_a_message_is_decoded_with_its_sender_read_from_the_subject() -> None:
    own = DECODE(delivered(event()))
    assert own.event.id == "e1" and own.sender == VILLAGE and own.author == VILLAGE and own.route.to is None
    assert own.payload == "progress" and own.what == "案件事件"
    down = DECODE(delivered(event(node=TOWN), down_subject(TOWN, VILLAGE, "case", "progress")))
    assert down.sender == TOWN and down.route.to == VILLAGE and down.route.kind == "case"


def test_what_cannot_be_parsed_or_lacks_its_ids_is_a_dead_letter_naming_it() -> None:
    with pytest.raises(BadMessage, match="无法解析的案件事件"):
        DECODE(delivered(b"\xff\xff\xff"))
    with pytest.raises(BadMessage, match=r"案件事件缺少案件编号、序号$"):
        DECODE(delivered(event(case_id="", seq=0)))
    with pytest.raises(BadMessage, match="缺少内容"):
        Decoder(pb.CaseEvent, "案件事件", required=("payload",))(delivered(pb.CaseEvent(id="e1")))


@pytest.mark.parametrize(
    "subject", ["fq.371702.371702101.371702101001.case", "fq.371702.371709101.371702101001.case.progress", "x.y"]
)
def test_a_subject_that_names_no_sender_is_a_dead_letter(subject: str) -> None:
    with pytest.raises(BadMessage, match="无法识别发送中心"):
        DECODE(delivered(event(), subject))


def own(node: str) -> Msg:
    """An event of ``node`` on its own subject."""
    return delivered(event(node=node), event_subject(node, "case", "progress"))


def test_checks_name_the_writer_they_refuse() -> None:
    below = Decoder(pb.CaseEvent, "案件事件", checks=[written_within(TOWN, itself=False)])
    assert below(own(VILLAGE)).author == VILLAGE
    with pytest.raises(BadMessage, match=f"案件事件来自辖区外的节点 {OTHER_VILLAGE}"):
        below(own(OTHER_VILLAGE))
    with pytest.raises(BadMessage, match="辖区外"):
        below(own(TOWN))
    above = Decoder(pb.CaseEvent, "案件事件", checks=[written_above(VILLAGE)])
    assert above(own(COUNTY)).author == COUNTY
    for node in (VILLAGE, OTHER_VILLAGE):
        with pytest.raises(BadMessage, match="非上级"):
            above(own(node))


@pytest.mark.parametrize("claimed", [OTHER_VILLAGE, TOWN, COUNTY, ""])
def test_an_event_claiming_another_author_than_its_sender_is_forged(claimed: str) -> None:
    with pytest.raises(BadMessage) as caught:
        DECODE(delivered(event(node=claimed)))  # on the village's own subject
    reason = caught.value.message
    assert reason.startswith("伪造或越权：") and f"实际发送中心为 {VILLAGE}" in reason
    assert f"自称由 {claimed or '（空）'} 发出" in reason
    # Sent down, the publisher of the down subject is the sender.
    with pytest.raises(BadMessage, match=f"^伪造或越权：.*实际发送中心为 {TOWN}"):
        DECODE(delivered(event(node=COUNTY), down_subject(TOWN, VILLAGE, "case", "progress")))


def test_a_sender_must_lie_where_the_stream_it_was_sourced_from_reaches() -> None:
    sibling = f"{TOWN}002"
    assert DECODE(delivered(event(), source=f"FQ_EVENTS_{VILLAGE}")).sender == VILLAGE
    assert DECODE(delivered(event(), source=f"FQ_EVENTS_{TOWN}")).sender == VILLAGE  # sourced on, through the town
    spoofed = delivered(event(node=sibling), event_subject(sibling, "case", "progress"), source=f"FQ_EVENTS_{VILLAGE}")
    with pytest.raises(
        BadMessage, match=f"^伪造或越权：案件事件的主题自称由 {sibling} 发出，却来自 {VILLAGE} 的事件流"
    ):
        DECODE(spoofed)
    from_above = down_subject(COUNTY, VILLAGE, "case", "progress")
    assert DECODE(delivered(event(node=COUNTY), from_above, source=f"FQ_DOWN_{TOWN}")).sender == COUNTY
    sideways = down_subject(OTHER_VILLAGE[:9], VILLAGE, "case", "progress")
    with pytest.raises(BadMessage, match=f"却来自 {TOWN} 的下行流"):
        DECODE(delivered(event(node=OTHER_VILLAGE[:9]), sideways, source=f"FQ_DOWN_{TOWN}"))


def test_a_hub_relays_other_authors_events_on_its_own_subject() -> None:
    relayed = delivered(event(node=OTHER_VILLAGE), down_subject(COUNTY, VILLAGE, "case", "progress"))
    with pytest.raises(BadMessage, match="伪造或越权"):
        DECODE(relayed)
    hub = Decoder(pb.CaseEvent, "案件事件", relays=True)
    assert hub(relayed).sender == COUNTY and hub(relayed).author == OTHER_VILLAGE


def test_authorized_refuses_a_writer_the_aggregate_does_not_name() -> None:
    held = pb.Case(id="c1", holder_node=OTHER_VILLAGE, version=3)
    envelope = DECODE(delivered(event(seq=4)))
    with pytest.raises(
        BadMessage, match=f"^伪造或越权：案件事件（progress）由 {VILLAGE} 发出，只有承办中心 {OTHER_VILLAGE} 可以写入"
    ):
        decode.authorized(envelope, "case", writers.case_owners(held))
    decode.authorized(envelope, "case", writers.case_owners(pb.Case(id="c1", holder_node=VILLAGE)))


def raising(exc: Exception) -> inbox.Handler:
    def apply(session: Session, envelope: Envelope[pb.CaseEvent]) -> None:
        raise exc

    return receive(DECODE, apply)


@pytest.mark.parametrize("error", [errors.IllegalTransition("不能这样办"), errors.InvalidArgument("seq", "不能这样办")])
def test_an_error_meaning_never_is_a_dead_letter_with_its_reason(error: errors.FengqiaoError) -> None:
    with pytest.raises(BadMessage, match="不能这样办") as caught:
        raising(error)(None, delivered(event()))  # type: ignore[arg-type]
    assert caught.value.__cause__ is error


@pytest.mark.parametrize("error", [NotYet("前序事件未到"), errors.Unavailable("数据库不可用"), ValueError("bug")])
def test_an_error_meaning_later_or_a_bug_is_left_as_it_is(error: Exception) -> None:
    with pytest.raises(type(error)):
        raising(error)(None, delivered(event()))  # type: ignore[arg-type]


def test_every_domain_error_is_either_never_or_later() -> None:
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.FengqiaoError)]
    classes += [BadMessage, NotYet]
    for cls in classes:
        if cls is errors.FengqiaoError or cls is BadMessage:
            continue
        assert (cls in decode.NEVER_APPLIES) != (cls in decode.APPLIES_LATER), cls
