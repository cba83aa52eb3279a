"""The command line of scripts/bench: its arguments, and main."""

import argparse
import json
import signal
import sys
from pathlib import Path

from .bench import Bench
from .env import FULL, QUICK, RATE_LIMIT_OVERRIDES, BenchError, Mode, log
from .report import json_report, table

DESCRIPTION = "The benchmark: one command, from a clean checkout to a table of figures."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true",
                        help="1 run x 1 s per cell: a smoke test of the harness (CI)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--runs", type=int, help="runs per cell (default: 2, quick: 1)")
    parser.add_argument("--seconds", type=int, help="seconds per cell (default: 10, quick: 1)")
    parser.add_argument("--skip-build", action="store_true",
                        help="use the binaries already in target/release")
    parser.add_argument("--only", metavar="NAMES",
                        help="comma-separated operations to measure (substrings, e.g. "
                             "'login,me'; 'flood' for the login-flood cell); default: all")
    parser.add_argument("--keep-workdir", action="store_true",
                        help="keep the work directory (server log, seeded tokens)")
    return parser.parse_args(argv)


def choose_mode(args: argparse.Namespace) -> Mode:
    mode = QUICK if args.quick else FULL
    if args.runs or args.seconds:
        mode = Mode(mode.name, args.seconds or mode.cell_seconds, args.runs or mode.runs,
                    mode.ceiling_seconds, mode.settle_limit_s)
    return mode


def print_overrides() -> None:
    print("Settings changed from the service's defaults:")
    for name, value in RATE_LIMIT_OVERRIDES.items():
        print(f"  {name}={value}")
    sys.stdout.flush()


def on_sigterm(*_) -> None:
    """SIGTERM (e.g. a CI timeout) cleans up like Ctrl-C does."""
    log("terminated")
    sys.exit(143)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = choose_mode(args)
    print_overrides()
    signal.signal(signal.SIGTERM, on_sigterm)
    only = [o.strip() for o in args.only.split(",")] if args.only else None
    bench = Bench(mode, args.keep_workdir, only)
    try:
        bench.execute(args.skip_build)
    except BenchError as e:
        log(f"error: {e}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        bench.cleanup()

    # The figures first: a fault in the table cannot lose a run of many minutes.
    if args.json:
        Path(args.json).write_text(json.dumps(json_report(bench.results), indent=2) + "\n")
        log(f"JSON written to {args.json}")
    print(table(bench.results))
    if bench.results.total_errors:
        log(f"FAILED: {bench.results.total_errors} request(s) failed their check "
            "(see the table)")
        return 1
    return 0
