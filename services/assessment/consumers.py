"""Assessment's bus handlers: the subtree sync storing, once each and in order, the project
events its events stream sources from below, so the county lists every project of the county
with its gates, hazards and disputes."""

from __future__ import annotations

from sqlmodel import Session

from fengqiao.decode import Decoder, Envelope, receive, written_within
from fengqiao.inbox import Handler
from fengqiao.v1 import assessment_pb2
from services.assessment import store

SYNC_CONSUMER = "fq-assessment-sync"


def project_event_handler(node_code: str) -> Handler:
    """Store a project event replicated from below; malformed or foreign ones become dead letters,
    one ahead of its predecessor waits (``NotYet``)."""
    decode = Decoder(
        assessment_pb2.ProjectEvent,
        "项目事件",
        required=("id", "project_id", "seq", "payload"),
        checks=[written_within(node_code, itself=False)],
    )

    def apply(session: Session, envelope: Envelope[assessment_pb2.ProjectEvent]) -> None:
        store.store_replicated(session, event=envelope.event)

    return receive(decode, apply)
