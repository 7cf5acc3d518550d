"""Server processes the benchmarks start: a ``python -m bench.<module>`` that prints one JSON line
when it is ready and runs until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent


@contextlib.asynccontextmanager
async def server_process(
    module: str, *args: str, ready_timeout_s: float = 60.0, stop_timeout_s: float = 20.0
) -> AsyncIterator[dict[str, Any]]:
    """Run ``python -m module args…`` and yield the JSON object of its first stdout line.

    The process is terminated (then killed) on exit; its stderr is kept in a temporary file
    and its tail logged when it fails to start or exits with an error.
    """
    with tempfile.TemporaryFile(mode="w+b") as errors:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, *args, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=errors
        )
        try:
            assert proc.stdout is not None
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), ready_timeout_s)
            except TimeoutError:
                line = b""
            if not line:
                raise RuntimeError(f"{module} did not start:\n{_tail(errors)}")
            log.info("%s ready (pid %d): %s", module, proc.pid, line.decode().strip())
            yield json.loads(line)
        finally:
            await _stop(proc, stop_timeout_s)
            if proc.returncode not in (0, -signal.SIGTERM):
                log.warning("%s exited with %s:\n%s", module, proc.returncode, _tail(errors))


async def _stop(proc: asyncio.subprocess.Process, timeout_s: float) -> None:
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout_s)
    except TimeoutError:
        log.warning("pid %d did not stop within %.0f s; killing it", proc.pid, timeout_s)
        proc.kill()
        await proc.wait()


def _tail(errors: Any, lines: int = 30) -> str:
    errors.seek(0)
    text: str = errors.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


async def wait_for_sigterm() -> None:
    """Return once this process receives SIGTERM or SIGINT (for the server scripts)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def announce(info: dict[str, Any]) -> None:
    """Print the ready line a server script owes its parent."""
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
