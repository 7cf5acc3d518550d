"""``python -m bench.county_server``: one center of a one-town, one-village county in this
process — the village, or with ``--node town`` its town — with SQLite (WAL) files in a temporary
directory, and a nats-server unless ``--nats-url`` names one. Each center runs in its own
process, as it would on its own machine.

Prints ``{"node": code, "grpc": address, "nats_url": url}`` when serving and stops on
SIGTERM, removing its directory. ``--profile FILE`` writes a cProfile of the event-loop thread.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import shutil
import tempfile
from pathlib import Path

from bench.procs import announce, wait_for_sigterm
from devtools.natsserver import NatsServer
from fengqiao.divisions import Tier
from harness.county import LocalCounty, small_county

log = logging.getLogger(__name__)

TOPOLOGY = small_county(towns=1, villages=1)
VILLAGE = next(n.code for n in TOPOLOGY.nodes if n.tier is Tier.VILLAGE)
TOWN = next(n.code for n in TOPOLOGY.nodes if n.tier is Tier.TOWN)


async def serve(workdir: Path, node: str, nats_url: str | None) -> None:
    """Start a nats-server (unless given one) and ``node`` under ``workdir``; run until SIGTERM."""
    nats = None if nats_url else NatsServer(store_dir=workdir / "nats").start()
    url = nats_url or (nats.url if nats else "")
    try:
        county = LocalCounty(TOPOLOGY, workdir / "county", url, lambda code: f"sqlite:///{workdir / f'{code}.db'}")
        try:
            await county.start(node)
            announce({"node": node, "grpc": county[node].grpc_address, "nats_url": url})
            await wait_for_sigterm()
        finally:
            await county.stop()
    finally:
        if nats is not None:
            nats.stop()


def main() -> None:
    """Parse ``--profile`` and serve in a fresh temporary directory."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the server here")
    parser.add_argument("--node", choices=("village", "town"), default="village", help="which center to run")
    parser.add_argument("--nats-url", help="use this nats-server instead of starting one")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="fq-bench-county-"))
    profiler = cProfile.Profile() if args.profile else None
    try:
        if profiler is not None:
            profiler.enable()
        asyncio.run(serve(workdir, VILLAGE if args.node == "village" else TOWN, args.nats_url))
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
