"""The chaos driver: at random moments it SIGKILLs a center's node process or its nats-server,
or cuts a center's link to its parent, and brings each back after a random outage."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import random

from bench.soak.county import SoakCounty

log = logging.getLogger(__name__)
KINDS = ("kill_node", "kill_server", "cut_link")


@dataclasses.dataclass
class ChaosLog:
    """What the chaos driver did: (seconds since it began, kind, center, outage seconds)."""

    faults: list[tuple[float, str, str, float]] = dataclasses.field(default_factory=list)

    def counts(self) -> collections.Counter[str]:
        return collections.Counter(kind for _, kind, _, _ in self.faults)


async def run_chaos(
    county: SoakCounty,
    *,
    rng: random.Random,
    stop: asyncio.Event,
    mean_interval_s: float = 6.0,
    outage_s: tuple[float, float] = (0.5, 8.0),
    at_once: int = 2,
) -> ChaosLog:
    """Inject faults until ``stop``: on average one every ``mean_interval_s``, each lasting a
    uniform draw from ``outage_s``, at most ``at_once`` under way. Returns with everything
    healed that this driver broke."""
    chaos = ChaosLog()
    loop = asyncio.get_running_loop()
    begun = loop.time()
    under_way: dict[str, asyncio.Task[None]] = {}  # center → its fault, one fault per center
    codes = [n.code for n in county.topology.nodes]
    while True:
        try:
            await asyncio.wait_for(stop.wait(), timeout=rng.expovariate(1 / mean_interval_s))
            break
        except TimeoutError:
            pass
        for code in [c for c, t in under_way.items() if t.done()]:
            under_way.pop(code).result()
        if len(under_way) >= at_once:
            continue
        code = rng.choice([c for c in codes if c not in under_way])
        kind = rng.choice(KINDS if county.topology.node(code).parent else KINDS[:2])
        outage = rng.uniform(*outage_s)
        chaos.faults.append((round(loop.time() - begun, 1), kind, code, round(outage, 1)))
        log.info("chaos: %s %s for %.1f s", kind, code, outage)
        under_way[code] = asyncio.create_task(_fault(county, kind, code, outage))
    await asyncio.gather(*under_way.values())
    return chaos


async def _fault(county: SoakCounty, kind: str, code: str, outage_s: float) -> None:
    if kind == "kill_node":
        county.kill_node(code)
        await asyncio.sleep(outage_s)
        county.start_node(code)
    elif kind == "kill_server":
        county.kill_server(code)
        await asyncio.sleep(outage_s)
        await county.start_server(code)
    else:
        await county.cut(code)
        await asyncio.sleep(outage_s)
        county.restore(code)
