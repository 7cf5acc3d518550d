"""``fengqiao demo`` (what ``make run`` runs): a whole county on this machine, stopped by Ctrl-C."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devtools.demo import DEMO_ACCOUNTS, busy_ports, shifted
from fengqiao.topology import load_topology

TOPOLOGY = Path(__file__).resolve().parents[2] / "deploy" / "topology" / "mudan-sample.yaml"
PASSWORD = "demo-test-password"


def free_base() -> int:
    topology = load_topology(TOPOLOGY)
    for _ in range(50):
        base = random.randrange(20000, 31000, 100)  # below Linux's ephemeral ports (32768–): none taken meanwhile
        moved = shifted(topology, base)
        ports = [base + 99] + [p for n in moved.nodes for p in (n.http_port, n.grpc_port, n.metrics_port)]
        if not busy_ports(ports):
            return base
    raise RuntimeError("no free block of ports")


def start_demo(base: int, state: Path, rate: float = 20) -> subprocess.Popen[str]:
    env = {**os.environ, "FQ_DEMO_PASSWORD": PASSWORD}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "host.cli",
            "demo",
            "--port",
            str(base),
            "--rate",
            str(rate),
            "--state-dir",
            str(state),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=TOPOLOGY.parents[2],
    )


def wait_healthy(base: int, demo: subprocess.Popen[str], timeout_s: float = 90) -> None:
    """Every center of the demo answers /healthz (the county first, the villages last)."""
    deadline = time.monotonic() + timeout_s
    pending = [n.http_port for n in shifted(load_topology(TOPOLOGY), base).nodes]
    while pending and time.monotonic() < deadline:
        if demo.poll() is not None:
            pytest.fail(f"demo exited early:\n{demo.stdout.read() if demo.stdout else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{pending[0]}/healthz", timeout=1).status_code == 200:
                pending.pop(0)
                continue
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    if pending:
        pytest.fail(f"/healthz did not answer on ports {pending}")


def county_figures(base: int, token: str) -> tuple[int, int]:
    reply = httpx.get(
        f"http://127.0.0.1:{base}/api/v1/nodes/371702/stats",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    reply.raise_for_status()
    return int(reply.json()["received"]), int(reply.json()["closed"])


def log_in_as(port: int, username: str) -> httpx.Response:
    """Log in at a center of the demo; the demo creates its operators once every center answers,
    so the first tries may come before."""
    deadline = time.monotonic() + 30
    while True:
        reply = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/auth/token", data={"username": username, "password": PASSWORD}, timeout=5
        )
        if reply.status_code == 200 or time.monotonic() > deadline:
            return reply
        time.sleep(0.5)


def read_until(demo: subprocess.Popen[str], words: str, timeout_s: float = 60) -> str:
    """What the demo printed up to and including the first line with ``words``."""
    assert demo.stdout is not None
    deadline, seen = time.monotonic() + timeout_s, []
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        seen.append(line)
        if words in line or not line:
            break
    return "".join(seen)


def stop(demo: subprocess.Popen[str]) -> str:
    demo.send_signal(signal.SIGINT)
    out, _ = demo.communicate(timeout=60)
    return out


@pytest.mark.slow
def test_demo_serves_the_county_and_its_case_count_grows_then_ctrl_c_stops_everything(tmp_path: Path) -> None:
    base = free_base()
    demo = start_demo(base, tmp_path / "state")
    try:
        wait_healthy(base, demo)
        login = httpx.post(
            f"http://127.0.0.1:{base}/api/v1/auth/token",
            data={"username": "admin", "password": PASSWORD},
            timeout=5,
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        # Every node of the demo accepts the same administrator.
        village = httpx.post(
            f"http://127.0.0.1:{base + 3}/api/v1/auth/token",
            data={"username": "admin", "password": PASSWORD},
            timeout=5,
        )
        assert village.status_code == 200
        # The demo's operators log in at their own centers, each with its role.
        moved = shifted(load_topology(TOPOLOGY), base)
        for account in DEMO_ACCOUNTS:
            port = account.node(moved).http_port
            mine = log_in_as(port, account.username)
            me = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/auth/me",
                headers={"Authorization": f"Bearer {mine.json()['access_token']}"},
                timeout=5,
            )
            assert me.status_code == 200 and me.json()["role"] == account.role, me.text
        first, _ = county_figures(base, token)
        deadline = time.monotonic() + 30
        while county_figures(base, token)[0] <= first + 5:
            assert time.monotonic() < deadline, "the county's case count did not grow"
            time.sleep(0.5)
        while county_figures(base, token)[1] == 0:  # the centers work their cases round the loop
            assert time.monotonic() < deadline + 30, "no case was closed"
            time.sleep(0.5)
    finally:
        out = stop(demo)
    assert demo.returncode == 0, out
    assert "http://127.0.0.1:" in out and PASSWORD in out
    assert "已停止所有进程" in out
    moved = shifted(load_topology(TOPOLOGY), base)
    assert not busy_ports([base + 99] + [n.http_port for n in moved.nodes]), "processes left behind"
    county_log = (tmp_path / "state" / "logs" / "371702.log").read_text(encoding="utf-8")
    assert " INFO host.node: node 371702 " in county_log, "make run's nodes log for people (FQ_LOG_FORMAT=text)"

    # A second run over the same state starts cleanly; at --rate 0 nothing is simulated.
    again = start_demo(base, tmp_path / "state", rate=0)
    try:
        wait_healthy(base, again)
        started = read_until(again, "模拟器")
    finally:
        out = started + stop(again)
    assert again.returncode == 0, out
    assert "模拟器：未启动" in out and "Traceback" not in out, out


def test_demo_names_a_port_that_is_already_in_use(tmp_path: Path) -> None:
    base = free_base()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base))
        blocker.listen(1)
        demo = start_demo(base, tmp_path / "state")
        out, _ = demo.communicate(timeout=60)
    assert demo.returncode == 1
    assert str(base) in out and "占用" in out
