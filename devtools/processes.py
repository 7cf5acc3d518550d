"""Stopping child processes this program started: gracefully, or with SIGKILL as a crash would."""

from __future__ import annotations

import subprocess
from typing import Any


def stop_process(process: subprocess.Popen[Any] | None, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``; nothing if not running."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def kill_process(process: subprocess.Popen[Any] | None) -> None:
    """SIGKILL: no shutdown, mid-write, as a power cut would; nothing if not running."""
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()
