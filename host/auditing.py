"""``fengqiao audit verify``: check a node's audit trail — every link of its hash chain, the
stored cases and case events against the content hashes it chained, and, with ``--parent``, the
chain against the signed checkpoints its parent holds (``services.federation.checkpoints``).

    fengqiao audit verify --database sqlite:///data/371702101001.db
    fengqiao audit verify --database sqlite:///data/371702101001.db \\
        --node 371702101001 --parent 10.0.0.2:50051 [--tls-dir /etc/fengqiao/tls]

Without ``--parent`` someone who can write the database could rewrite a row and re-hash the rest,
or cut off the tail, and the chain would still hold: only the parent's checkpoints tell.
Exit status: 0 intact, 1 a problem found (each named: which row, which checkpoint), 2 cannot check.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import grpc

from fengqiao.cases.audited import audited_content
from fengqiao.db import Database
from fengqiao.divisions import tier_of
from fengqiao.errors import FengqiaoError
from fengqiao.grpcutil import channel
from fengqiao.security import audit
from fengqiao.security.peers import channel_credentials
from fengqiao.security.pki import TlsFiles
from fengqiao.v1 import federation_pb2, federation_pb2_grpc
from services.federation import checkpoints


async def _held(node: str, parent: str, tls_dir: Path | None) -> list[federation_pb2.AuditCheckpoint]:
    credentials = None if tls_dir is None else channel_credentials(TlsFiles.of(tls_dir, node))
    async with channel(parent, timeout_s=30.0, credentials=credentials) as ch:
        request = federation_pb2.ListAuditCheckpointsRequest(node=node)
        reply = await federation_pb2_grpc.FederationStub(ch).ListAuditCheckpoints(request)
    return list(reply.checkpoints)


def _verify(args: argparse.Namespace) -> int:
    held: list[federation_pb2.AuditCheckpoint] = []
    problems: list[audit.Broken] = []
    if args.parent:
        if not args.node:
            print("对照上级检查点时须用 --node 指定本中心的行政区划代码", file=sys.stderr)
            return 2
        try:
            tier_of(args.node, field="--node")
        except FengqiaoError as exc:
            print(f"无法对照上级检查点：{exc.message}", file=sys.stderr)
            return 2
        try:
            held = asyncio.run(_held(args.node, args.parent, args.tls_dir))
        except FengqiaoError as exc:
            print(f"无法读取上级所存的检查点：{exc.message}", file=sys.stderr)
            return 2
        except grpc.aio.AioRpcError as exc:
            print(f"无法从上级 {args.parent} 读取检查点：{exc.details() or exc.code().name}", file=sys.stderr)
            return 2
        forged = [c for c in held if c.node != args.node or checkpoints.bad_signature(c) is not None]
        problems += [audit.Broken(c.row_id, f"上级所存检查点（第 {c.row_id} 条）签名无效，不予采信") for c in forged]
        held = [c for c in held if c not in forged]
    db = Database(args.database)
    try:
        verdict = db.transaction(lambda s: audit.examine(s, anchors=checkpoints.anchors(held), content=audited_content))
    except FengqiaoError as exc:
        print(f"无法读取审计日志：{exc.message}", file=sys.stderr)
        return 2
    finally:
        db.close()
    problems = verdict.problems + problems
    if problems:
        print(f"审计链未通过核验：{len(problems)} 处问题（链接完好的记录 {verdict.count} 条）")
        for problem in problems:
            print(f"  第 {problem.row_id} 条记录 —— {problem.reason}")
        return 1
    if not args.parent:
        anchored = "（未对照上级所存的检查点：整段改写或截断只有对照才能发现，请加 --node 与 --parent）"
    elif not held:
        anchored = "（上级尚未存有本中心的检查点）"
    else:
        newest = held[-1]
        anchored = f"，与上级所存的 {len(held)} 个检查点一致（最新：第 {newest.row_id} 条，{newest.at}）"
    print(f"审计链完整：共 {verdict.count} 条记录{anchored}")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fengqiao audit verify`` to the command line."""
    auditing = sub.add_parser("audit", help="check the node's tamper-evident audit trail")
    audit_sub = auditing.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser(
        "verify", help="check the hash chain, the stored cases against it and, with --parent, the parent's checkpoints"
    )
    verify.add_argument("--database", required=True, help="the node's database URL (sqlite:///… or postgresql://…)")
    verify.add_argument("--node", default="", help="the node's division code (with --parent)")
    verify.add_argument("--parent", default="", help="the parent's gRPC address host:port, which holds the checkpoints")
    verify.add_argument("--tls-dir", dest="tls_dir", type=Path, help="the node's certificate, key and ca.crt (mTLS)")
    verify.set_defaults(run=_verify)
