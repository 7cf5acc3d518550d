"""``python -m bench.echo_server --port 0``: a raw grpc.aio unary echo server (the gRPC baseline).

One generic handler, ``/bench.Echo/Echo``, returns the request bytes; no interceptors, no
health or reflection. Prints ``{"port": N}`` when serving and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio

import grpc

from bench.procs import announce, wait_for_sigterm

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Echo"


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


def handlers() -> grpc.GenericRpcHandler:
    """The echo service: a unary method with identity (de)serializers."""
    method = grpc.unary_unary_rpc_method_handler(_echo, request_deserializer=None, response_serializer=None)
    return grpc.method_handlers_generic_handler(SERVICE, {"Echo": method})


async def serve(host: str, port: int) -> None:
    """Serve the echo until SIGTERM."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handlers(),))
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    announce({"port": bound})
    try:
        await wait_for_sigterm()
    finally:
        await server.stop(grace=1.0)


def main() -> None:
    """Parse ``--host``/``--port`` and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
