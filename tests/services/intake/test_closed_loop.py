"""A case walks the whole closed loop over gRPC with real NATS; the county's timeline equals the village's."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from fengqiao.grpcutil import channel
from fengqiao.v1 import case_pb2 as pb
from fengqiao.v1 import common_pb2, intake_pb2, intake_pb2_grpc
from harness.county import LocalCounty, submit_request
from tests.system.test_county_sync import eventually

VILLAGE, TOWN, COUNTY = "371702101001", "371702101", "371702"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def ts(value: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


async def timeline(address: str, case_id: str) -> list[bytes]:
    async with channel(address) as ch:
        reply = await intake_pb2_grpc.IntakeStub(ch).ListCaseEvents(intake_pb2.ListCaseEventsRequest(case_id=case_id))
    return [e.SerializeToString() for e in reply.events]


async def test_case_walks_from_intake_to_archive_with_return_extension_rework_and_reopen(chain: LocalCounty) -> None:
    async with channel(chain[VILLAGE].grpc_address) as ch:
        api = intake_pb2_grpc.IntakeStub(ch)
        case = (await api.SubmitCase(submit_request(VILLAGE))).case
        cid, who = case.id, "值班员刘洋"
        assert case.status == pb.CASE_STATUS_RECEIVED and case.HasField("deadline")

        case = await api.Triage(
            intake_pb2.TriageRequest(
                case_id=cid, actor=who, step=pb.Triaged(category="邻里", response_class=pb.RESPONSE_CLASS_ROUTINE)
            )
        )
        assert case.deadline.ToDatetime() - case.clock_start.ToDatetime() == dt.timedelta(hours=24)
        slip = pb.AssignmentSlip(department="司法所", requirement="三日内组织双方调解")
        await api.Assign(intake_pb2.AssignRequest(case_id=cid, actor=who, step=pb.Assigned(slip=slip)))
        case = await api.Return(
            intake_pb2.ReturnRequest(case_id=cid, actor="司法所", step=pb.Returned(reason="属治安纠纷，应由派出所办理"))
        )
        assert case.status == pb.CASE_STATUS_RETURNED and case.returns == 1
        slip = pb.AssignmentSlip(department="派出所", requirement="调查处理并反馈")
        await api.Assign(intake_pb2.AssignRequest(case_id=cid, actor=who, step=pb.Assigned(slip=slip)))
        case = await api.Acknowledge(intake_pb2.AcknowledgeRequest(case_id=cid, actor="派出所"))
        assert case.acknowledged and case.status == pb.CASE_STATUS_ACKNOWLEDGED

        later = case.deadline.ToDatetime(dt.UTC) + dt.timedelta(hours=24)
        await api.RequestExtension(
            intake_pb2.RequestExtensionRequest(
                case_id=cid, actor="派出所", step=pb.ExtensionRequested(reason="当事人外出务工", new_deadline=ts(later))
            )
        )
        case = await api.DecideExtension(
            intake_pb2.DecideExtensionRequest(case_id=cid, actor=who, step=pb.ExtensionDecided(granted=True))
        )
        assert case.deadline == ts(later) and not case.HasField("pending_extension")

        await api.Start(intake_pb2.StartRequest(case_id=cid, actor="派出所"))
        await api.ReportProgress(
            intake_pb2.ReportProgressRequest(case_id=cid, actor="派出所", step=pb.Progress(note="已约谈双方"))
        )
        photo = await api.PutAttachment(intake_pb2.PutAttachmentRequest(content=PNG, content_type="image/png"))
        feedback = pb.FeedbackSlip(
            result="双方达成协议，加装落水管",
            photos=[photo.sha256],
            mediated=True,
            mediation_level="中心联合调解（派出所）",
        )
        await api.SubmitFeedback(
            intake_pb2.SubmitFeedbackRequest(case_id=cid, actor="派出所", step=pb.FeedbackGiven(slip=feedback))
        )
        case = await api.Review(
            intake_pb2.ReviewRequest(case_id=cid, actor=who, step=pb.Reviewed(approved=False, opinion="缺少协议书签字"))
        )
        assert case.status == pb.CASE_STATUS_IN_PROGRESS and case.reworks == 1 and not case.HasField("feedback")
        await api.SubmitFeedback(
            intake_pb2.SubmitFeedbackRequest(case_id=cid, actor="派出所", step=pb.FeedbackGiven(slip=feedback))
        )
        await api.Review(intake_pb2.ReviewRequest(case_id=cid, actor=who, step=pb.Reviewed(approved=True)))
        case = await api.Close(intake_pb2.CloseRequest(case_id=cid, actor=who, step=pb.Closed(summary="调解成功")))
        assert case.status == pb.CASE_STATUS_CLOSED
        assert case.resolved_tier == common_pb2.TIER_VILLAGE and case.mediation_level == "中心联合调解（派出所）"

        case = await api.FollowUp(
            intake_pb2.FollowUpRequest(
                case_id=cid, actor=who, step=pb.FollowedUp(slip=pb.EvaluationSlip(satisfaction=2, comment="落水管未装"))
            )
        )
        assert case.status == pb.CASE_STATUS_REOPENED and case.reopens == 1 and not case.HasField("feedback")

        await api.Assign(intake_pb2.AssignRequest(case_id=cid, actor=who, step=pb.Assigned(slip=slip)))
        await api.Acknowledge(intake_pb2.AcknowledgeRequest(case_id=cid, actor="派出所"))
        await api.Start(intake_pb2.StartRequest(case_id=cid, actor="派出所"))
        await api.SubmitFeedback(
            intake_pb2.SubmitFeedbackRequest(case_id=cid, actor="派出所", step=pb.FeedbackGiven(slip=feedback))
        )
        await api.Review(intake_pb2.ReviewRequest(case_id=cid, actor=who, step=pb.Reviewed(approved=True)))
        await api.Close(intake_pb2.CloseRequest(case_id=cid, actor=who, step=pb.Closed()))
        await api.FollowUp(
            intake_pb2.FollowUpRequest(
                case_id=cid, actor=who, step=pb.FollowedUp(slip=pb.EvaluationSlip(satisfaction=5, method="电话回访"))
            )
        )
        case = await api.Archive(intake_pb2.ArchiveRequest(case_id=cid, actor=who))
        assert case.status == pb.CASE_STATUS_ARCHIVED

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await api.Start(intake_pb2.StartRequest(case_id=cid, actor="派出所"))
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "已归档" in (caught.value.details() or "")
        assert (await api.GetCase(intake_pb2.GetCaseRequest(id=cid))).version == case.version

    village = await timeline(chain[VILLAGE].grpc_address, cid)
    assert len(village) == case.version

    async def county_caught_up() -> bool:
        return await timeline(chain[COUNTY].grpc_address, cid) == village

    await eventually(county_caught_up, within_s=5, what="the county's timeline equals the village's")
    async with channel(chain[COUNTY].grpc_address) as ch:
        at_county = await intake_pb2_grpc.IntakeStub(ch).GetCase(intake_pb2.GetCaseRequest(id=cid))
    assert at_county == case


async def test_only_the_holder_may_advance_a_case(chain: LocalCounty) -> None:
    async with channel(chain[VILLAGE].grpc_address) as ch:
        case = (await intake_pb2_grpc.IntakeStub(ch).SubmitCase(submit_request(VILLAGE))).case

    async def at_town() -> bool:
        async with channel(chain[TOWN].grpc_address) as ch:
            try:
                await intake_pb2_grpc.IntakeStub(ch).GetCase(intake_pb2.GetCaseRequest(id=case.id))
                return True
            except grpc.aio.AioRpcError:
                return False

    await eventually(at_town, within_s=5, what="case replicated to the town")
    async with channel(chain[TOWN].grpc_address) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await intake_pb2_grpc.IntakeStub(ch).Triage(
                intake_pb2.TriageRequest(
                    case_id=case.id, actor="镇值班员", step=pb.Triaged(category="邻里", response_class=1)
                )
            )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "承办中心" in (caught.value.details() or "")


async def test_illegal_step_is_refused_and_changes_nothing(chain: LocalCounty) -> None:
    async with channel(chain[VILLAGE].grpc_address) as ch:
        api = intake_pb2_grpc.IntakeStub(ch)
        case = (await api.SubmitCase(submit_request(VILLAGE))).case
        for call in (
            api.Close(intake_pb2.CloseRequest(case_id=case.id, actor="x", step=pb.Closed())),
            api.Archive(intake_pb2.ArchiveRequest(case_id=case.id, actor="x")),
            api.Acknowledge(intake_pb2.AcknowledgeRequest(case_id=case.id, actor="x")),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "不能" in (caught.value.details() or "")
        after = await api.GetCase(intake_pb2.GetCaseRequest(id=case.id))
        events = await api.ListCaseEvents(intake_pb2.ListCaseEventsRequest(case_id=case.id))
    assert after == case and len(events.events) == 1


async def test_feedback_must_refer_to_attachments_stored_at_the_node(chain: LocalCounty) -> None:
    async with channel(chain[VILLAGE].grpc_address) as ch:
        api = intake_pb2_grpc.IntakeStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await api.PutAttachment(intake_pb2.PutAttachmentRequest(content=b"MZ\x90\x00", content_type="image/png"))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        stored = await api.PutAttachment(intake_pb2.PutAttachmentRequest(content=PNG, content_type="image/png"))
        again = await api.PutAttachment(intake_pb2.PutAttachmentRequest(content=PNG, content_type="image/png"))
        assert stored.sha256 == again.sha256 and stored.size == len(PNG)
        fetched = await api.GetAttachment(intake_pb2.GetAttachmentRequest(sha256=stored.sha256))
        assert fetched.content == PNG
        case = (await api.SubmitCase(submit_request(VILLAGE))).case
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await api.SubmitFeedback(
                intake_pb2.SubmitFeedbackRequest(
                    case_id=case.id,
                    actor="x",
                    step=pb.FeedbackGiven(slip=pb.FeedbackSlip(result="ok", photos=["0" * 64])),
                )
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "slip.photos[0]" in (caught.value.details() or "")
