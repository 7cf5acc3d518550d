"""The ``fengqiao`` command: run a node, or a whole sample county (``fengqiao demo``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from fengqiao.errors import FengqiaoError
from fengqiao.settings import MissingSecret, NodeSettings
from fengqiao.telemetry import exporter_for, setup_tracing

DEFAULT_TOPOLOGY = Path("deploy/topology/mudan-sample.yaml")


def _node(args: argparse.Namespace) -> int:
    from fengqiao.node import Node, run_until_stopped

    overrides: dict[str, object] = {"node_code": args.code, "topology_file": args.topology}
    for key in ("nats_url", "data_dir", "grpc_port", "http_port", "services"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    try:
        settings = NodeSettings(**overrides)  # type: ignore[arg-type]
    except (ValidationError, MissingSecret) as exc:
        print(f"配置错误：{exc}", file=sys.stderr)
        return 2
    setup_tracing(
        service_name=f"{settings.otel_service_name}-{settings.node_code}",
        exporter=exporter_for(settings.otel_traces_exporter),
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_until_stopped(Node(settings), stop)

    try:
        asyncio.run(main())
    except FengqiaoError as exc:
        print(f"节点 {args.code} 无法启动：{exc.message}", file=sys.stderr)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    from fengqiao.demo import run_demo

    return run_demo(
        topology_file=args.topology,
        http_port=args.port,
        rate_per_s=args.rate,
        state_dir=args.state_dir,
        fresh=args.fresh,
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="fengqiao", description="枫桥：综治中心县、乡镇、村三级协同")
    sub = top.add_subparsers(dest="command", required=True)

    node = sub.add_parser("node", help="run one node (a center) of a county")
    node.add_argument("--code", required=True, help="division code of the node")
    node.add_argument("--topology", type=Path, default=DEFAULT_TOPOLOGY)
    node.add_argument("--services", help="comma-separated subset of intake,routing,assessment,federation")
    node.add_argument("--nats-url", dest="nats_url")
    node.add_argument("--data-dir", dest="data_dir", type=Path)
    node.add_argument("--grpc-port", dest="grpc_port", type=int)
    node.add_argument("--http-port", dest="http_port", type=int)
    node.set_defaults(run=_node)

    demo = sub.add_parser("demo", help="start a whole sample county on this machine")
    demo.add_argument("--topology", type=Path, default=DEFAULT_TOPOLOGY)
    demo.add_argument("--port", type=int, default=8700, help="the county's HTTP port (others follow it)")
    demo.add_argument("--rate", type=float, default=2.0, help="simulated cases per second, county-wide")
    demo.add_argument("--state-dir", dest="state_dir", type=Path, default=Path(".fengqiao/demo"))
    demo.add_argument("--fresh", action="store_true", help="forget the previous run's cases")
    demo.set_defaults(run=_demo)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
