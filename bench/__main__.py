"""``python -m bench [name]``: run every benchmark, or the one named."""

from __future__ import annotations

import argparse
import logging
import sys

from bench import benchmarks, catchup, county_year, escalation, rollup  # noqa: F401  (registers the benchmarks)
from bench.harness import REGISTRY, BenchSettings, run


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the benchmarks and return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", nargs="?", help=f"one benchmark: {', '.join(REGISTRY)}")
    args = parser.parse_args(argv)
    if args.name is not None and args.name not in REGISTRY:
        print(
            f"unknown benchmark {args.name!r}; known benchmarks: {', '.join(REGISTRY)}",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("bench").setLevel(logging.INFO)
    names = [args.name] if args.name is not None else list(REGISTRY)
    return run(names, BenchSettings())


if __name__ == "__main__":
    sys.exit(main())
