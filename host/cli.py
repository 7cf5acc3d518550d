"""The ``fengqiao`` command: run a node, a whole sample county (``fengqiao demo``), render a
county's configs (``fengqiao topology render``), upgrade a node's database (``fengqiao db``), back a
node up and restore it (``fengqiao backup``, ``fengqiao restore``), rotate the personal-data keys
(``fengqiao keys``), recompute its figure facts (``fengqiao figures rebuild``), write the working-day
calendar (``fengqiao calendar generate``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from fengqiao import logs
from fengqiao.errors import FengqiaoError
from fengqiao.settings import LogSettings, MissingSecret, NodeSettings
from fengqiao.telemetry import exporter_for, setup_tracing
from host import auditing, backup, keys, users

DEFAULT_TOPOLOGY = Path("deploy/topology/mudan-sample.yaml")


def _node(args: argparse.Namespace) -> int:
    from host.node import Node, run_until_stopped

    overrides: dict[str, object] = {"node_code": args.code, "topology_file": args.topology}
    for key in ("nats_url", "data_dir", "grpc_port", "http_port", "services"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    try:
        settings = NodeSettings(**overrides)  # type: ignore[arg-type]
    except (ValidationError, MissingSecret) as exc:
        print(f"配置错误：{exc}", file=sys.stderr)
        return 2
    logs.configure(fmt=args.logging.log_format, level=args.logging.log_level, node=settings.node_code)
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
    from devtools.demo import run_demo

    # People watch the demo: text logs, unless FQ_LOG_FORMAT asks for JSON.
    log_format = args.logging.log_format if "log_format" in args.logging.model_fields_set else "text"
    logs.configure(fmt=log_format, level=args.logging.log_level)
    return run_demo(
        topology_file=args.topology,
        http_port=args.port,
        rate_per_s=args.rate,
        state_dir=args.state_dir,
        fresh=args.fresh,
        robot=args.robot,
        auto_accept=args.auto_accept,
        log_format=log_format,
    )


CALENDAR_HEADER = """\
# 县级工作日历：法定节假日与调休上班日（按工作日计算的办理时限、预警和督办以此为准）。
#
# 由 `fengqiao calendar generate --years …` 按国务院办公厅公布的放假安排（chinesecalendar 包）生成，
# 可由县级编辑；修改后各节点自动重新读取，文件有误时沿用上一版并记录原因。
#   holidays  放假的工作日（周一至周五）及节日名称
#   workdays  调休上班的周末及说明
# 某年写作 null 表示当年安排尚未公布：暂按周一至周五计算，公布后请重新生成或手工补入。
"""


def _calendar(args: argparse.Namespace) -> int:
    import yaml

    from fengqiao import workdays

    data = workdays.generate(args.years)
    text = CALENDAR_HEADER + yaml.safe_dump(data, allow_unicode=True, sort_keys=True)
    workdays.parse(yaml.safe_load(text))  # what is written reads back
    args.out.write_text(text, encoding="utf-8")
    missing = [year for year, days in data["years"].items() if days is None]
    print(f"已写入 {args.out}：{'、'.join(str(y) for y in sorted(data['years']))} 年", end="")
    print(f"；{'、'.join(map(str, missing))} 年的放假安排尚未公布，暂按周一至周五计算" if missing else "")
    return 0


def _render(args: argparse.Namespace) -> int:
    from importlib.metadata import version

    from fengqiao import k8s
    from fengqiao.natsconfig import render
    from fengqiao.topology import load_topology

    try:
        topology = load_topology(args.topology)
        written = render(
            topology,
            args.out,
            state_dir=args.state_dir,
            config_dir=args.config_dir,
            tls_dir=args.tls_dir,
        )
        written += k8s.render(topology, args.out / "k8s", version=version("fengqiao"))
    except (FengqiaoError, ValueError, OSError) as exc:
        print(f"无法生成配置：{exc}", file=sys.stderr)
        return 1
    print(f"已生成 {len(written)} 个文件到 {args.out}/")
    return 0


def _db(args: argparse.Namespace) -> int:
    from fengqiao import migrations

    try:
        if args.db_command == "upgrade":
            done = migrations.upgrade(args.database)
            if done.adopted:
                print("已接管旧版本（无迁移记录）建立的数据库，基线为 " + migrations.BASELINE)
            if done.changed:
                print(f"数据库结构已升级：{done.before or ('旧版本' if done.adopted else '空')} → {done.after}")
            else:
                print(f"数据库结构已是最新版本 {done.after}，无需升级")
        elif args.db_command == "current":
            revision = migrations.current(args.database)
            latest = migrations.head()
            state = "最新" if revision == latest else f"待升级到 {latest}"
            print(f"数据库结构版本：{revision or '无（空库或旧版本建立）'}（{state}）")
        elif args.db_command == "history":
            applied = migrations.current(args.database) if args.database else None
            for step in migrations.history():
                mark = "  ← 当前" if step.revision == applied else ""
                print(f"{step.revision}  {step.message.splitlines()[0] if step.message else ''}{mark}")
        else:
            from host.node import import_tables

            import_tables()
            path = migrations.revision(args.database, args.message)
            print(f"已生成迁移脚本：{path}（请检查后提交）")
    except FengqiaoError as exc:
        print(f"数据库结构操作失败：{exc.message}", file=sys.stderr)
        return 1
    return 0


def _figures(args: argparse.Namespace) -> int:
    import time

    from sqlalchemy.exc import SQLAlchemyError

    from fengqiao.cases import rebuild
    from fengqiao.db import make_engine

    engine = make_engine(args.database)
    started = time.monotonic()
    first: list[int] = []

    def show(p: rebuild.Progress) -> None:
        if not first:
            first.append(p.done)
            if p.done:
                print(f"接续上次未完成的重算：已完成 {p.done:,} 件", file=sys.stderr)
        pace = (p.done - first[0]) / max(time.monotonic() - started, 1e-9)
        share = p.done / p.total if p.total else 1.0
        line = f"重算统计事实：{p.done:,} / {p.total:,} 件（{share:.0%}），{pace:,.0f} 件/秒"
        print("\r" + line, end="", file=sys.stderr, flush=True)

    try:
        done = rebuild.rebuild(
            engine.begin, batch=args.batch, restart=args.restart, workers=args.workers, progress=show
        )
    except FengqiaoError as exc:
        print(f"\n统计事实重算失败：{exc.message}（再次运行将从中断处继续）", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(f"\n统计事实重算失败：数据库错误 {exc.__class__.__name__}（再次运行将从中断处继续）", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    took = time.monotonic() - started
    print(file=sys.stderr)
    count = done.done - first[0]
    print(f"统计事实已重算：{count:,} 件，用时 {took:.1f} 秒（{count / max(took, 1e-9):,.0f} 件/秒）")
    return 0


def _pki(args: argparse.Namespace) -> int:
    import datetime as dt

    from fengqiao.security import pki

    now = dt.datetime.now(dt.UTC)
    try:
        if args.pki_command == "init":
            written = pki.init_ca(args.dir, county=args.county, name=args.name, now=now)
            print(f"已创建县级 CA：{written}（ca.key 须妥善保管，只留在县级）")
        else:
            files = pki.issue(args.dir, code=args.code, hosts=args.host or [], now=now)
            print(f"已为 {args.code} 签发证书：{files.cert}、{files.key}")
    except FengqiaoError as exc:
        print(f"证书操作失败：{exc.message}", file=sys.stderr)
        return 1
    return 0


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
    demo.add_argument("--rate", type=float, default=2.0, help="simulated cases per second, county-wide (0: none)")
    demo.add_argument(
        "--no-robot", dest="robot", action="store_false", help="leave the simulator's cases to the operators too"
    )
    demo.add_argument(
        "--auto-accept", dest="auto_accept", action="store_true", help="towns accept escalations without an operator"
    )
    demo.add_argument("--state-dir", dest="state_dir", type=Path, default=Path(".fengqiao/demo"))
    demo.add_argument("--fresh", action="store_true", help="forget the previous run's cases")
    demo.set_defaults(run=_demo)

    topology = sub.add_parser("topology", help="work with a county's topology file")
    topology_sub = topology.add_subparsers(dest="topology_command", required=True)
    rendering = topology_sub.add_parser(
        "render", help="write every nats-server and service config of the county, and its Kubernetes kustomization"
    )
    rendering.add_argument("--topology", type=Path, default=DEFAULT_TOPOLOGY)
    rendering.add_argument("--out", type=Path, required=True, help="directory to write into")
    rendering.add_argument("--state-dir", dest="state_dir", type=Path, default=Path("/var/lib/fengqiao"))
    rendering.add_argument("--config-dir", dest="config_dir", type=Path, default=Path("/etc/fengqiao"))
    rendering.add_argument("--tls-dir", dest="tls_dir", type=Path, help="<code>.crt/.key and ca.crt for leaf TLS")
    rendering.set_defaults(run=_render)
    users.add_parser(sub)  # fengqiao user add / key (host/users.py)
    keys.add_parser(sub)  # fengqiao keys rotate / reseal / list (host/keys.py)
    backup.add_parser(sub)  # fengqiao backup / restore (host/backup.py)

    auditing.add_parser(sub)  # fengqiao audit verify (host/auditing.py)

    database = sub.add_parser("db", help="the node's database schema: migrations (Alembic)")
    db_sub = database.add_subparsers(dest="db_command", required=True)
    url_help = "the node's database URL (sqlite:///… or postgresql://…)"
    upgrade = db_sub.add_parser("upgrade", help="apply the pending migrations (a node does so itself at start-up)")
    upgrade.add_argument("--database", required=True, help=url_help)
    current = db_sub.add_parser("current", help="show the database's schema revision")
    current.add_argument("--database", required=True, help=url_help)
    history = db_sub.add_parser("history", help="list the migrations, oldest first")
    history.add_argument("--database", help=url_help + "; marks its revision")
    revision = db_sub.add_parser("revision", help="write a new migration: the models' changes beyond the database")
    revision.add_argument("--database", required=True, help="a scratch database (upgraded to the head first)")
    revision.add_argument("-m", "--message", required=True, help="what the migration does, in a few words")
    for command in (upgrade, current, history, revision):
        command.set_defaults(run=_db)

    calendar = sub.add_parser("calendar", help="the county's working-day calendar (法定节假日与调休)")
    calendar_sub = calendar.add_subparsers(dest="calendar_command", required=True)
    generating = calendar_sub.add_parser("generate", help="write the published arrangements of some years as YAML")
    generating.add_argument("--years", type=int, nargs="+", required=True, help="e.g. 2026 2027")
    generating.add_argument("--out", type=Path, required=True, help="the calendar file to write")
    generating.set_defaults(run=_calendar)

    figures = sub.add_parser("figures", help="the figure facts kept beside the cases")
    figures_sub = figures.add_subparsers(dest="figures_command", required=True)
    rebuild = figures_sub.add_parser(
        "rebuild", help="recompute every figure fact from the event logs (after a definition change); resumable"
    )
    rebuild.add_argument("--database", required=True, help=url_help)
    rebuild.add_argument("--batch", type=int, default=2000, help="cases per transaction")
    rebuild.add_argument("--restart", action="store_true", help="start again from the first case")
    rebuild.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes that fold the logs (0: none besides this one)",
    )
    rebuild.set_defaults(run=_figures)

    pki = sub.add_parser("pki", help="the county certificate authority: node certificates for mTLS")
    pki_sub = pki.add_subparsers(dest="pki_command", required=True)
    init = pki_sub.add_parser("init", help="create the county CA (ca.crt, ca.key)")
    init.add_argument("--dir", type=Path, required=True)
    init.add_argument("--county", required=True, help="the county's division code")
    init.add_argument("--name", required=True, help="the county's name, e.g. 牡丹区")
    issue = pki_sub.add_parser("issue", help="issue a node its certificate (<code>.crt, <code>.key)")
    issue.add_argument("--dir", type=Path, required=True)
    issue.add_argument("--code", required=True, help="the node's division code (the certificate's CN)")
    issue.add_argument("--host", action="append", help="an IP or DNS name the node serves on (repeatable)")
    for command in (init, issue):
        command.set_defaults(run=_pki)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.logging = LogSettings()
    except ValidationError as exc:
        print(f"配置错误：{exc}", file=sys.stderr)
        return 2
    logs.configure(fmt=args.logging.log_format, level=args.logging.log_level)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
