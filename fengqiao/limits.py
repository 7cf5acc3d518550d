"""The most text a request may carry: every string field of every request has a maximum, by kind.

``Limits`` (settings ``FQ_LIMIT_*``) gives the maximum of each kind of field, in characters;
``KINDS`` names the kind of every string field of the requests in ``proto/fengqiao/v1`` (a test
checks that none is missing; a field not named takes ``default``). ``check`` walks a request's
fields recursively and raises ``InvalidArgument`` naming the first field over its limit; the gRPC
server applies it to every call before any handler runs (``grpcutil.start_server``), and the HTTP
gateway, which calls the services over gRPC, answers the same refusal with 400.

A request's text as a whole is bounded too (``request_bytes``, UTF-8, attachments' bytes
excepted: they are stored content-addressed and never travel in events), and so is the number
of entries of a repeated field (``items``), so the largest event a valid request can produce
stays well under the broker's ``MAX_PAYLOAD`` (tests/fengqiao/test_limits.py measures it).
"""

from __future__ import annotations

from typing import Literal

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fengqiao.errors import InvalidArgument

Kind = Literal["code", "name", "reason", "text"]

MAX_PAYLOAD = 1024 * 1024
"""The largest message every nats-server of a county accepts (``max_payload``, rendered into each
config by ``natsconfig``; also nats-server's default, so a server started without a config agrees)."""


class Limits(BaseSettings):
    """The maximum length of each kind of text field, in characters (``FQ_LIMIT_*``)."""

    model_config = SettingsConfigDict(env_prefix="FQ_LIMIT_", extra="ignore")

    code: int = Field(default=128, ge=1, description="ids, division codes, actors, categories, enum words")
    name: int = Field(default=200, ge=1, description="names, titles, addresses, phone and id numbers")
    reason: int = Field(default=1000, ge=1, description="reasons, comments, opinions, summaries")
    text: int = Field(default=4000, ge=1, description="bodies, descriptions, notes, results, requirements")
    default: int = Field(default=200, ge=1, description="a string field not named in limits.KINDS")
    items: int = Field(default=200, ge=1, description="entries of one repeated field")
    request_bytes: int = Field(
        default=256 * 1024, ge=1, description="UTF-8 bytes of all the text of one request together"
    )

    def of(self, field: str) -> int:
        """The maximum length of a string field named ``field``."""
        kind = KINDS.get(field)
        return self.default if kind is None else int(getattr(self, kind))


_CODE = (
    "actor case_id category channel code content_type department departments direction division_code "
    "format grid hazard_id holder_node id invited kind lead_department level measure_id mediation_level "
    "method node origin_node page_token party_divisions period project_id role severity sha256 stage "
    "status subtask_id task_id to_node to_nodes viewer villages within photos signatures client_request_id"
)
_NAME = "address assessor completed_by filename id_number name phone reporter responsible_unit title unit"
_REASON = "comment opinion reason reasons resolution summary"
_TEXT = "body description note requirement result task text"

KINDS: dict[str, Kind] = {
    **dict.fromkeys(_CODE.split(), "code"),
    **dict.fromkeys(_NAME.split(), "name"),
    **dict.fromkeys(_REASON.split(), "reason"),
    **dict.fromkeys(_TEXT.split(), "text"),
}
"""The kind of every string field of the requests, by field name (the same name means the same
kind in every message)."""


def check(request: Message, limits: Limits) -> None:
    """Raise ``InvalidArgument`` for the first text field of ``request`` over its limit."""
    total = _walk(request, limits, "")
    if total > limits.request_bytes:
        raise InvalidArgument("request", f"请求中的文字合计不能超过 {limits.request_bytes // 1024} KB")


def _walk(message: Message, limits: Limits, prefix: str) -> int:
    total = 0
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        repeated = field.is_repeated
        if repeated and len(value) > limits.items:  # the requests have no map fields
            raise InvalidArgument(path, f"不能超过 {limits.items} 项")
        values = value if repeated else [value]
        if field.type == FieldDescriptor.TYPE_STRING:
            most = limits.of(field.name)
            for text in values:
                if len(text) > most:
                    raise InvalidArgument(path, f"不能超过 {most} 字")
                total += len(text.encode())
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in values:
                total += _walk(item, limits, f"{path}.")
    return total
