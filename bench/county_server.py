"""``python -m bench.county_server``: a nats-server and the village node of a one-town,
one-village county in this process, with SQLite (WAL) files in a temporary directory. Only the
village runs: the benchmarks measure one node, and its parents would share this process's CPU.

Prints ``{"village": code, "village_grpc": address, "nats_url": url}`` when serving and stops on
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
from fengqiao.divisions import Tier
from fengqiao.natsserver import NatsServer
from fengqiao.testing import LocalCounty, small_county

log = logging.getLogger(__name__)

TOPOLOGY = small_county(towns=1, villages=1)
VILLAGE = next(n.code for n in TOPOLOGY.nodes if n.tier is Tier.VILLAGE)


async def serve(workdir: Path) -> None:
    """Start nats-server and the county under ``workdir``; run until SIGTERM."""
    nats = NatsServer(store_dir=workdir / "nats").start()
    try:
        county = LocalCounty(TOPOLOGY, workdir / "county", nats.url, lambda code: f"sqlite:///{workdir / f'{code}.db'}")
        try:
            await county.start(VILLAGE)
            announce({"village": VILLAGE, "village_grpc": county[VILLAGE].grpc_address, "nats_url": nats.url})
            await wait_for_sigterm()
        finally:
            await county.stop()
    finally:
        nats.stop()


def main() -> None:
    """Parse ``--profile`` and serve in a fresh temporary directory."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the server here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="fq-bench-county-"))
    profiler = cProfile.Profile() if args.profile else None
    try:
        if profiler is not None:
            profiler.enable()
        asyncio.run(serve(workdir))
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
