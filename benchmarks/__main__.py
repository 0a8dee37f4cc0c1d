"""``python -m benchmarks [--quick] [--only events,maps,footprint,startup,sustained] [--json P]``.

Runs each benchmark against plain BCC (and, for events and maps, a C + libbpf reader built at
bench time) on the same run, prints one table (our figure, BCC's, C's, the ratios, the goal and
whether it is met) and writes the same to ``benchmarks/results.json``.
Needs root (it loads programs). A full run takes 5-7 minutes; ``--quick`` 1-2.5 (7 min 3 s and
2 min 26 s at load average 8-10 on 2 CPUs).
"""
from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from .report import Result, table, write_json

SUITES = ("events", "maps", "footprint", "startup", "sustained")


def _suite(name: str):
    if name == "events":
        from . import bench_events as mod
    elif name == "maps":
        from . import bench_maps as mod
    elif name == "footprint":
        from . import bench_footprint as mod
    elif name == "startup":
        from . import bench_startup as mod
    else:
        from . import bench_sustained as mod
    return mod.run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[2])
    parser.add_argument("--quick", action="store_true",
                        help="smaller runs (sustained load 5 s instead of 60 s, no 1M map)")
    parser.add_argument("--only", default=",".join(SUITES),
                        help=f"comma-separated subset of: {', '.join(SUITES)}")
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results.json"),
                        help="where to write the results (default: benchmarks/results.json)")
    args = parser.parse_args(argv)
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(wanted) - set(SUITES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    results: list[Result] = []
    failed = False
    for name in wanted:
        t0 = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        try:
            results.extend(_suite(name)(quick=args.quick))
        except Exception:  # noqa: BLE001 - one broken suite must not hide the others
            failed = True
            traceback.print_exc()
            results.append(Result(f"{name}: FAILED (see the traceback above)", "", None, None,
                                  met=False))
        print(f"[bench] {name} took {time.perf_counter() - t0:.0f} s", file=sys.stderr,
              flush=True)
    print(table(results))
    write_json(results, args.json, quick=args.quick)
    print(f"\nwritten to {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
