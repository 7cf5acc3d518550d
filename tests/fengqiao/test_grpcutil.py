"""A node's gRPC port is its own: a second server on it is refused, not given half the calls."""

from __future__ import annotations

import pytest

from fengqiao.errors import Unavailable
from fengqiao.grpcutil import start_server


async def test_a_second_server_on_a_nodes_port_is_refused_and_the_port_is_free_again_after_stop() -> None:
    first, port = await start_server([], host="127.0.0.1", port=0)
    try:
        with pytest.raises(Unavailable, match="无法绑定"):
            await start_server([], host="127.0.0.1", port=port)
    finally:
        await first.stop(None)
    again, _ = await start_server([], host="127.0.0.1", port=port)
    await again.stop(None)
