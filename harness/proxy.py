"""A TCP proxy a test (or benchmark) can cut and restore: the WAN link between two nodes.

Leaf-node remotes point at the proxy; ``cut()`` closes every connection through it and refuses
new ones (accepted and closed at once, as a dead link looks to the leaf), ``restore()`` lets
them through again. The parent's leafnode listener sets ``no_advertise`` so the leaf cannot
learn the parent's real address and bypass the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)


class LinkProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port`` until cut."""

    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.requested_port = port
        self.port = 0
        self.is_cut = False
        self.connections = 0  # accepted and forwarded, over the proxy's life
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> LinkProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.requested_port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def cut(self) -> None:
        """Close every open connection and refuse new ones."""
        self.is_cut = True
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        log.info("link to %s:%d cut", *self.target)

    def restore(self) -> None:
        """Let connections through again."""
        self.is_cut = False
        log.info("link to %s:%d restored", *self.target)

    async def close(self) -> None:
        await self.cut()
        if self._server is not None:
            self._server.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)  # let each finish, not be cancelled
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._forward(reader, writer)
        finally:
            self._handlers.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            self._pipes.difference_update(pipes)
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while not self.is_cut:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
