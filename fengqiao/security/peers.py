"""gRPC between nodes over mTLS: credentials from the county PKI, and the rule by which the peer
certificate's division code decides what the caller may do.

Same node (its other processes, its HTTP front): everything. A tier above (an ancestor): read
methods only (Get…, List…), plus health and reflection. A tier below: only reading back the
checkpoints of its own audit chain (``BELOW``; the method checks whose). Anyone else:
PERMISSION_DENIED. A caller
without a certificate from the county CA does not get past the TLS handshake.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from fengqiao.divisions import is_within
from fengqiao.security.pki import TlsFiles

_ALWAYS = ("/grpc.health.v1.Health/", "/grpc.reflection.")
BELOW = ("ListAuditCheckpoints",)
"""What a node may call on its ancestors (``fengqiao audit verify --parent``)."""


def may_call(node: str, peer: str, method: str) -> str | None:
    """Why ``peer`` may not call ``method`` on ``node``, or None when it may."""
    if method.startswith(_ALWAYS):
        return None
    if not peer:
        return "调用方证书没有行政区划代码"
    if peer == node:
        return None
    name = method.rsplit("/", 1)[-1]
    if is_within(node, peer) and name.startswith(("Get", "List")):
        return None
    if is_within(peer, node) and name in BELOW:
        return None
    if is_within(node, peer):
        return f"上级节点 {peer} 只能查询 {node}，不能调用 {name}"
    return f"节点 {peer} 无权调用 {node} 的 {name}"


def peer_code(context: grpc.aio.ServicerContext) -> str:
    """The division code of the calling node's certificate ('' when there is none)."""
    names = list(context.auth_context().get("x509_common_name") or [b""])
    return names[0].decode()


class PeerPolicy(grpc.aio.ServerInterceptor):
    """Applies ``may_call`` to every unary call by the peer certificate's division code."""

    def __init__(self, node_code: str) -> None:
        self._node = node_code

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]], details: Any
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner, method, node = handler.unary_unary, details.method, self._node

        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            refusal = may_call(node, peer_code(context), method)
            if refusal is not None:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, refusal)
            return await inner(request, context)  # type: ignore[arg-type]

        return grpc.unary_unary_rpc_method_handler(
            guarded, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """A server that requires a client certificate from the county CA."""
    ca, cert, key = files.read()
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    """A client presenting this node's certificate and trusting only the county CA."""
    ca, cert, key = files.read()
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
