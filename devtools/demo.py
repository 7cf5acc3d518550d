"""``fengqiao demo``: a whole sample county on this machine.

Renders the sample topology (``fengqiao topology render``) and starts from it one nats-server
per node — each a JetStream leaf node of its parent's, in its own domain — then one process
per node talking only to its own server, and a simulator taking cases in at the villages.
Ctrl-C stops every process it started, by PID.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from devtools.natsserver import NatsServer
from devtools.processes import stop_process
from devtools.robot import run_handling
from devtools.simulator import run_simulator
from fengqiao.divisions import Tier
from fengqiao.grpcutil import channel
from fengqiao.natsconfig import client_urls, render, server_files
from fengqiao.security import keyring, sealing
from fengqiao.topology import NodeSpec, Topology, dump_topology, load_topology
from fengqiao.v1 import federation_pb2, federation_pb2_grpc


class DemoSettings(BaseSettings):
    """Secrets of the demo (README: the demo's administrator and Open311 key), generated when not given."""

    model_config = SettingsConfigDict(env_prefix="FQ_", extra="ignore")

    demo_password: SecretStr | None = None
    demo_open311_key: SecretStr | None = None


def shifted(topology: Topology, http_port: int) -> Topology:
    """The topology with every port moved so the county's HTTP port is ``http_port``."""
    offset = http_port - topology.county.http_port
    moved = topology.with_ports({n.code: (n.grpc_port + offset, n.http_port + offset) for n in topology.nodes})
    moved = dataclasses.replace(
        moved,
        nodes=tuple(
            dataclasses.replace(n, metrics_port=n.metrics_port + offset if n.metrics_port else 0) for n in moved.nodes
        ),
    )
    if not topology.leafnodes:
        return moved
    nodes = tuple(
        dataclasses.replace(
            n,
            nats=dataclasses.replace(
                n.nats,
                client_port=n.nats.client_port + offset,
                leaf_port=n.nats.leaf_port + offset,
                monitor_port=n.nats.monitor_port + offset,
                cluster_port=n.nats.cluster_port + offset,
            ),
        )
        for n in moved.nodes
    )
    return dataclasses.replace(moved, nodes=nodes)


def nats_ports(topology: Topology) -> list[int]:
    """The ports the demo's nats-servers listen on."""
    if not topology.leafnodes:
        return [topology.county.http_port + 99]
    return [
        port + i
        for n in topology.nodes
        for i in range(n.nats.servers)
        for port in (n.nats.client_port, n.nats.leaf_port, n.nats.monitor_port)
    ]


def start_servers(topology: Topology, state_dir: Path) -> tuple[list[NatsServer], dict[str, str]]:
    """Start the demo's nats-servers; returns them and each node's client URL.

    The leaf topology: one server per node from the rendered configs, parents first. An older
    topology file without ``leafnodes``: one server shared by every node.
    """
    servers: list[NatsServer] = []
    if not topology.leafnodes:
        shared = NatsServer(store_dir=state_dir / "nats", port=topology.county.http_port + 99).start()
        return [shared], {n.code: shared.url for n in topology.nodes}
    rendered = state_dir / "rendered"
    render(topology, rendered, state_dir=state_dir / "nats", config_dir=rendered)
    try:
        for spec in sorted(topology.nodes, key=lambda n: n.tier):
            for name in server_files(spec):
                config = rendered / spec.code / name
                servers.append(NatsServer(store_dir=state_dir / "nats" / spec.code, config=config).start())
    except Exception:
        for server in servers:
            server.stop()
        raise
    return servers, {n.code: client_urls(n) for n in topology.nodes}


def busy_ports(ports: list[int]) -> list[int]:
    taken = []
    for port in ports:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                taken.append(port)
    return taken


def _wait_healthy(topology: Topology, procs: dict[str, subprocess.Popen[bytes]], logs: Path) -> str | None:
    """None when every node answers /healthz, else why not."""
    deadline = time.monotonic() + 60
    pending = {n.code: n for n in topology.nodes}
    with httpx.Client(timeout=1.0) as client:
        while pending and time.monotonic() < deadline:
            for code, node in list(pending.items()):
                if procs[code].poll() is not None:
                    tail = (logs / f"{code}.log").read_text(encoding="utf-8", errors="replace")[-1500:]
                    return f"节点 {node.name}（{code}）启动失败：\n{tail}"
                try:
                    if client.get(f"http://{node.http_address}/healthz").status_code == 200:
                        del pending[code]
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
    return None if not pending else f"节点未在 60 秒内就绪：{', '.join(pending)}"


async def _nothing() -> int:
    return 0


async def _simulate(topology: Topology, rate: float, robot: bool, stop: asyncio.Event) -> None:
    """The simulator (when ``rate`` > 0) and the robot working its cases (when ``robot``), with the
    county's figures every 10 s, until ``stop``."""
    county = topology.county
    simulating = rate > 0
    simulator = run_simulator(topology=topology, rate_per_s=rate, stop=stop) if simulating else _nothing()
    sim = asyncio.create_task(simulator)
    work = asyncio.create_task(run_handling(topology=topology, stop=stop) if simulating and robot else asyncio.sleep(0))
    ch = channel(county.grpc_address)
    stub = federation_pb2_grpc.FederationStub(ch)
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=10)
            except TimeoutError:
                pass
            try:
                stats = await stub.GetNodeStats(federation_pb2.GetNodeStatsRequest(code=county.code))
                print(f"[演示] {county.name} 已汇总受理 {stats.received} 件，办结 {stats.closed} 件", flush=True)
            except Exception as exc:
                print(f"[演示] 暂时无法读取县级统计：{exc}", flush=True)
    finally:
        accepted = await sim
        await work
        await ch.close(None)
        print(f"[演示] 模拟器共提交 {accepted} 件", flush=True)


def demo_personal_key(state_dir: Path) -> str:
    """The demo county's key sealing personal data: kept in the state directory, so a restart
    of the demo still opens the cases it took in before."""
    path = state_dir / "personal-data.key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(sealing.new_key(), encoding="utf-8")
    return path.read_text(encoding="utf-8").strip()


def demo_keyring(state_dir: Path) -> Path:
    """The demo county's keyring file, shared by all its nodes (one machine): it starts with the
    demo's key, and ``fengqiao keys rotate --keyring`` on it rotates every node at once."""
    path = state_dir / "keyring.json"
    if not path.exists():
        keyring.rotate(path, sealing.parse_key(demo_personal_key(state_dir)), before=None, now=dt.datetime.now(dt.UTC))
    return path


@dataclasses.dataclass(frozen=True)
class DemoAccount:
    """An operator the demo creates at its own center, so the console can be tried in every seat."""

    username: str
    role: str
    label: str
    tier: Tier
    department: str = ""

    def node(self, topology: Topology) -> NodeSpec:
        """The first center of the account's tier: 镇 for the town's, 村 for the village's."""
        return next(n for n in topology.nodes if n.tier is self.tier)


DEMO_ACCOUNTS = (
    DemoAccount("zhenzhiban", "duty_officer", "乡镇值班员", Tier.TOWN),
    DemoAccount("sifasuo", "mediator", "司法所调解员", Tier.TOWN, department="司法所"),
    DemoAccount("wanggeyuan", "grid_worker", "网格员", Tier.VILLAGE),
)


def create_accounts(topology: Topology, password: str) -> list[str]:
    """Create (or reset) the demo's operators, each at its own center's API as that center's
    admin; the lines to print for them."""
    lines = []
    with httpx.Client(timeout=30) as client:
        for account in DEMO_ACCOUNTS:
            node = account.node(topology)
            base = f"http://{node.http_address}"
            body = {
                "username": account.username, "password": password, "role": account.role,
                "node_code": node.code, "display_name": account.label, "department": account.department,
            }  # fmt: skip
            try:
                login = client.post(f"{base}/api/v1/auth/token", data={"username": "admin", "password": password})
                login.raise_for_status()
                headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
                client.post(f"{base}/api/v1/users", json=body, headers=headers).raise_for_status()
            except httpx.HTTPError as exc:  # the demo goes on; the operator can be made by hand
                lines.append(f"  {account.label}：未能创建 {account.username}（{exc}），可在{node.name}的账号页创建")
                continue
            lines.append(f"  {account.label}：{account.username}（{node.name} {base}/）")
    return lines


def run_demo(
    *,
    topology_file: Path,
    http_port: int,
    rate_per_s: float,
    state_dir: Path,
    fresh: bool,
    robot: bool = True,
    auto_accept: bool = False,
    log_format: str = "text",
) -> int:
    """Run the sample county until Ctrl-C; returns the exit code. Each node logs in ``log_format``
    to ``<state_dir>/logs/<code>.log``. The robot works only the simulator's cases (none without
    ``robot`` or at ``rate_per_s`` 0), and towns accept escalations by hand unless ``auto_accept``."""
    topology = shifted(load_topology(topology_file), http_port)
    wanted = nats_ports(topology) + [p for n in topology.nodes for p in (n.http_port, n.grpc_port, n.metrics_port) if p]
    taken = busy_ports(wanted)
    if taken:
        print(f"端口已被占用：{', '.join(map(str, taken))}。请先停止占用它们的程序，"
              f"或用 --port 换一组端口（当前县级 HTTP 端口 {http_port}）。", file=sys.stderr)  # fmt: skip
        return 1
    if fresh and state_dir.exists():
        shutil.rmtree(state_dir)
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    rendered = state_dir / "topology.yaml"
    dump_topology(topology, rendered)
    settings = DemoSettings()
    password = settings.demo_password.get_secret_value() if settings.demo_password else secrets.token_urlsafe(9)
    open311_key = settings.demo_open311_key.get_secret_value() if settings.demo_open311_key else secrets.token_hex(16)

    signal.signal(signal.SIGTERM, _interrupt)
    servers, nats_urls = start_servers(topology, state_dir)
    env = {
        **os.environ,
        "FQ_TOKEN_SECRET": secrets.token_urlsafe(32),
        "FQ_PERSONAL_DATA_KEY": demo_personal_key(state_dir),
        "FQ_PERSONAL_KEYRING": str(demo_keyring(state_dir)),
        "FQ_ADMIN_PASSWORD": password,
        "FQ_OPEN311_API_KEY": open311_key,  # issue 9: every node accepts the demo's Open311 key
        "FQ_DATA_DIR": str(state_dir / "data"),
        "FQ_LOG_FORMAT": log_format,
        "FQ_ROUTING_AUTO_ACCEPT_ESCALATIONS": "true" if auto_accept else "false",
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for node in sorted(topology.nodes, key=lambda n: -n.tier):  # children first: sources find their streams
            with (logs / f"{node.code}.log").open("wb") as log_file:
                command = [sys.executable, "-m", "host.cli", "node", "--code", node.code]
                procs[node.code] = subprocess.Popen(
                    [*command, "--topology", str(rendered)],
                    env={**env, "FQ_NATS_URL": nats_urls[node.code]},
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        problem = _wait_healthy(topology, procs, logs)
        if problem:
            print(problem, file=sys.stderr)
            return 1
        county = topology.county
        print(f"\n枫桥演示县已启动：{topology.name}（行政区划代码为样例）", flush=True)
        print(f"  县级操作台： http://{county.http_address}/", flush=True)
        print(f"  管理员账号： admin   密码：{password}（各中心相同）", flush=True)
        print("  演示操作员（密码同上，各在自己的中心登录）：", flush=True)
        for line in create_accounts(topology, password):
            print(line, flush=True)
        if county.metrics_url:
            print(f"  监控指标：   {county.metrics_url}（Prometheus；各中心地址见 /api/v1/nodes）", flush=True)
        print(f"  Open311 api_key：{open311_key}", flush=True)
        if topology.leafnodes:
            configs = state_dir / "rendered"
            print(f"  消息服务：每个中心一台 nats-server（JetStream 叶节点），配置在 {configs}/", flush=True)
        if rate_per_s <= 0:
            print(f"  模拟器：未启动（--rate 0），日志在 {logs}/。按 Ctrl-C 停止。\n", flush=True)
        else:
            worked = "自动处理模拟案件" if robot else "不自动处理（--no-robot）"
            print(f"  模拟器：每秒约 {rate_per_s:g} 件，{worked}；操作员受理的案件和上报留给操作员。", flush=True)
            print(f"  日志在 {logs}/。按 Ctrl-C 停止。\n", flush=True)
        asyncio.run(_run_until_signal(topology, rate_per_s, robot))
        return 0
    except KeyboardInterrupt:  # Ctrl-C while starting: stop as cleanly as after
        return 0
    finally:
        for process in procs.values():
            stop_process(process)
        for server in servers:
            server.stop()
        print("[演示] 已停止所有进程。", flush=True)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


async def _run_until_signal(topology: Topology, rate: float, robot: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await _simulate(topology, rate, robot, stop)
