"""The ``simcxl`` command line: run and validate scenarios.

Bad input (a config or trace the simulator rejects) prints one clear message and exits 2; it never
shows a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simcxl import __version__
from simcxl.errors import SimcxlError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _add_scenario_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="scenario YAML (e.g. configs/rdma.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a config value, e.g. --set workload.rate=8 (repeatable)")


def _cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from simcxl.config.loader import load_scenario
    from simcxl.metrics.table import print_summary
    from simcxl.simulate import simulate

    loaded = load_scenario(args.config, args.overrides)
    out_dir = args.output or Path("results") / loaded.scenario.name
    console = Console(stderr=True)
    total = loaded.scenario.workload.num_requests
    with Progress(TextColumn("simulating"), BarColumn(), TextColumn("{task.completed}/{task.total} requests"),
                  TimeElapsedColumn(), console=console, transient=True,
                  disable=args.quiet or not console.is_terminal) as progress:
        task = progress.add_task("run", total=total)
        outcome = simulate(loaded, lambda done: progress.update(task, completed=done) if done % 64 == 0 else None)
    outcome.write(out_dir, loaded)
    if not args.quiet:
        print_summary(outcome.summary, outcome.wall_s)
        print(f"results: {out_dir}/ (summary.json, requests.csv, config.resolved.yaml, run.json)")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from simcxl.config.loader import load_scenario
    from simcxl.simulate import prepare

    loaded = load_scenario(args.config, args.overrides)
    cluster, requests = prepare(loaded)
    s = loaded.scenario
    print(f"{args.config}: ok: {s.name}: {len(cluster.prefill)} prefill + {len(cluster.decode)} decode instances of "
          f"{s.model.name} on {s.gpu.name} (TP {s.cluster.tensor_parallel}), KV room "
          f"{cluster.compute.kv_capacity_tokens:,} tokens per instance, {len(requests):,} requests, "
          f"kv_manager {s.kv_manager.type}")
    return 0


def _cmd_bench_fabric(args: argparse.Namespace) -> int:
    from simcxl.bench import fabric as bench
    from simcxl.config.loader import load_profile
    from simcxl.config.schema import FabricSpec
    from simcxl.metrics.results import write_atomic

    spec = load_profile(args.hardware, "fabric", FabricSpec)
    rows = bench.item_sweep(spec) + bench.contention_sweep(spec)
    args.output.mkdir(parents=True, exist_ok=True)
    write_atomic(args.output / "fabric.csv", bench.csv_text(rows))
    bench.plot(rows, args.output / "fabric.png")
    checks = bench.reference_checks(spec, rows)
    for check in checks:
        print(check.line())
    crossover = bench.crossover_bytes(rows)
    if crossover is not None:
        print(f"rdma_read reaches 90% of its peak bandwidth from {crossover:,} B items")
    print(f"wrote {args.output / 'fabric.csv'} and {args.output / 'fabric.png'}")
    return 0 if all(c.ok for c in checks) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simcxl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"simcxl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="simulate a scenario and write a results folder")
    _add_scenario_args(run)
    run.add_argument("-o", "--output", type=Path, help="results folder (default: results/<scenario name>)")
    run.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    run.set_defaults(func=_cmd_run)

    validate = commands.add_parser("validate", help="check a scenario without running it")
    _add_scenario_args(validate)
    validate.set_defaults(func=_cmd_validate)

    bench = commands.add_parser("bench", help="microbenchmarks run through the simulator").add_subparsers(
        dest="what", required=True)
    fabric = bench.add_parser("fabric", help="bandwidth and latency of every data path, and contention")
    fabric.add_argument("--hardware", type=Path, default=Path("configs/hardware/rack_cxl_pool.yaml"),
                        help="a profile with a 'fabric:' section (default: configs/hardware/rack_cxl_pool.yaml)")
    fabric.add_argument("-o", "--output", type=Path, required=True, help="folder for fabric.csv and fabric.png")
    fabric.set_defaults(func=_cmd_bench_fabric)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SimcxlError as exc:
        print(f"simcxl: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("simcxl: interrupted; finished results were kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
