"""The ``simcxl`` command line: run and validate scenarios.

Bad input (a config or trace the simulator rejects) prints one clear message and exits 2; it never
shows a traceback. An internal error (a bug in simcxl, not in the input) exits 1 with one line that
says where its traceback was written; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from simcxl.version import __version__
from simcxl.errors import SimcxlError

if TYPE_CHECKING:  # the commands import what they need when they run, so `simcxl --help` starts fast
    from rich.console import Console

    from simcxl.config.loader import LoadedScenario
    from simcxl.simulate import RunOutcome

EXIT_INTERNAL_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
TIMELINE_MAX_EVENTS = 1_000_000


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def seeds_count(text: str) -> int:
    """argparse type: a replication count, a whole number from 1 to MAX_SEEDS."""
    from simcxl.metrics.replications import check_seeds

    try:
        return check_seeds(int(text))
    except ValueError:
        from simcxl.metrics.replications import MAX_SEEDS

        raise argparse.ArgumentTypeError(f"expected a whole number of replications from 1 to {MAX_SEEDS}, "
                                         f"got {text!r}") from None


def _add_seeds_arg(parser: argparse.ArgumentParser) -> None:
    """--seeds N: N replications, seeds derived from the scenario's (simcxl.metrics.replications)."""
    parser.add_argument("--seeds", type=seeds_count, default=1, metavar="N",
                        help="run N replications (seeds S, S+1, ..., S+N-1 for a scenario with seed S) and report "
                             "each headline metric's mean and 95%% interval (Student t); default 1")


def _add_scenario_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="scenario YAML (e.g. configs/rdma.yaml) or a bundled scenario's name (rdma, engine/vllm_llama-3.1-70b-fp8_h100)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a config value, e.g. --set workload.rate=8 (repeatable)")


def _cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from simcxl.config.loader import load_scenario
    from simcxl.metrics.table import print_summary
    from simcxl.simulate import RunInterrupted

    loaded = load_scenario(args.config, args.overrides)
    _warn(loaded)
    out_dir = args.output or Path("results") / loaded.scenario.name
    if args.seeds > 1:
        return _run_replicated(args, loaded, out_dir)
    console = Console(stderr=True)
    try:
        with _terminate_as_interrupt():
            outcome = _simulate_with_progress(args, loaded, console, out_dir)
    except RunInterrupted as stop:  # it kept what finished: a long run's first hours are worth having
        summary = stop.outcome.summary
        print(f"simcxl: interrupted at {summary['sim']['simulated_s']:.1f} s simulated; the "
              f"{summary['requests']['completed']:,} requests finished by then are in {out_dir}/ (summary.json "
              "has sim.interrupted: true)", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not args.quiet:
        print_summary(outcome.summary, outcome.wall_s)
        extra = ", timeline.json" if outcome.report.cluster.timeline is not None else ""
        print(f"results: {out_dir}/ (summary.json, requests.csv and .parquet, timeseries.csv, instances.csv, "
              f"config.resolved.yaml, run.json{extra})")
        if outcome.report.cluster.timeline is not None and outcome.report.cluster.timeline.dropped:
            print(f"timeline: cut at {_max_events(args):,} events ({outcome.report.cluster.timeline.dropped:,} "
                  "left out); narrow it with --timeline-window START:END")
    return 0


def _run_replicated(args: argparse.Namespace, loaded: LoadedScenario, out_dir: Path) -> int:
    """``simcxl run --seeds N`` (N > 1): one results folder per seed under ``out_dir``, in parallel on the
    executor, and the headline metrics as mean ± 95% half-width."""
    from rich.console import Console

    from simcxl.metrics.replications import interval_table, replica_seeds
    from simcxl.sweep.runner import run_replicated

    if args.timeline or args.timeline_window is not None or args.timeline_max_events is not None:
        raise SimcxlError("--timeline: record a timeline from one run (without --seeds); with --seeds N each "
                          "replication would write its own")
    seeds = replica_seeds(loaded.scenario.seed, args.seeds)
    if not args.quiet:
        print(f"{loaded.scenario.name}: {args.seeds} replications, seeds {seeds[0]}..{seeds[-1]} "
              f"({args.executor}, -j {args.jobs})", file=sys.stderr)
    with _terminate_as_interrupt():
        summary = run_replicated(loaded.path, list(args.overrides), out_dir, seeds, _executor(args))
    if not args.quiet:
        Console().print(interval_table(summary))
        print(f"results: {out_dir}/ (summary.json with replications, replications.csv, and seed=K/ with each "
              f"replication's results folder)")
    return 0


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, ``timeout``, a batch scheduler's time limit) stops the run as Ctrl-C does: what
    finished is written, and no temporary file of the streamed request table is left behind."""
    import signal

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _simulate_with_progress(args: argparse.Namespace, loaded: LoadedScenario, console: Console, out_dir: Path
                            ) -> RunOutcome:
    """The run, written to ``out_dir``, with a progress bar on a terminal (none with -q or when stderr is not
    one)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from simcxl.simulate import simulate

    shown = not args.quiet and console.is_terminal
    with Progress(TextColumn("simulating"), BarColumn(), TextColumn("{task.completed}/{task.total} requests"),
                  TimeElapsedColumn(), console=console, transient=True, disable=not shown) as progress:
        task = progress.add_task("run", total=None)

        def advance(done: int, total: int) -> None:
            if done % 64 == 0 or done == total:
                progress.update(task, completed=done, total=total)

        return simulate(loaded, advance if shown else None, _timeline(args), out_dir)  # no bar: no call per request


def _timeline(args: argparse.Namespace):
    """The Timeline that ``--timeline [--timeline-window START:END] [--timeline-max-events N]`` asks for, or
    None; either option alone implies --timeline."""
    if not args.timeline and args.timeline_window is None and args.timeline_max_events is None:
        return None
    from simcxl.metrics.timeline import Timeline

    start, end = args.timeline_window or (0.0, float("inf"))
    return Timeline(start, end, _max_events(args))


def _max_events(args: argparse.Namespace) -> int:
    return TIMELINE_MAX_EVENTS if args.timeline_max_events is None else args.timeline_max_events


def _window(text: str) -> tuple[float, float]:
    """argparse type: START:END in simulated seconds (END may be empty: to the end of the run)."""
    start, sep, end = text.partition(":")
    try:
        window = (float(start or 0), float(end) if end else float("inf"))
    except ValueError:
        window = None
    if not sep or window is None or not 0 <= window[0] < window[1] or window[0] == float("inf"):
        raise argparse.ArgumentTypeError(f"expected START:END in simulated seconds with 0 <= START < END, "
                                         f"e.g. 10:12, got {text!r}")
    return window


def _warn(loaded) -> None:
    """The loader's warnings, one line each on stderr."""
    for warning in loaded.warnings:
        print(f"simcxl: warning: {warning}", file=sys.stderr)


def _cmd_validate(args: argparse.Namespace) -> int:
    from simcxl.config.loader import load_scenario
    from simcxl.simulate import prepare

    loaded = load_scenario(args.config, args.overrides)
    _warn(loaded)
    cluster, workload = prepare(loaded)
    s = loaded.scenario
    skipped = f" ({len(workload.bad_rows)} bad trace rows skipped)" if workload.bad_rows else ""
    count = len(cluster.aggregated)
    instances = (f"{count} aggregated instance{'s' if count != 1 else ''}" if cluster.aggregated
                 else f"{len(cluster.prefill)} prefill + {len(cluster.decode)} decode instances")
    manager = "" if cluster.aggregated else f", kv_manager {s.kv_manager.type}"
    print(f"{args.config}: ok: {s.name}: {instances} of {s.model.name} on {s.gpu.name} "
          f"(TP {s.cluster.tensor_parallel}), KV room {cluster.compute.kv_capacity_tokens:,} tokens per instance, "
          f"{len(workload):,} requests{skipped}{manager}")
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


def _cmd_sweep(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from simcxl.sweep.runner import pending_points, run_sweep
    from simcxl.sweep.spec import load_sweep

    sweep = load_sweep(args.spec)
    todo = len(pending_points(sweep, args.output))
    console = Console(stderr=True)
    console.print(f"sweep {args.spec}: {len(sweep.points)} points, {len(sweep.points) - todo} already finished, "
                  f"{todo} to run ({args.executor}, -j {args.jobs})")
    executor = _executor(args)
    with Progress(TextColumn("points"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                  disable=not console.is_terminal) as progress:
        task = progress.add_task("sweep", total=len(sweep.points), completed=len(sweep.points) - todo)
        failures = run_sweep(sweep, args.output, executor, lambda done, total: progress.update(task, completed=done))
    for point, error in failures.items():
        print(f"point {point} failed: {error.strip().splitlines()[-1]}", file=sys.stderr)
    print(f"wrote {args.output / 'sweep.csv'} ({len(sweep.points) - len(failures)} of {len(sweep.points)} points)")
    return 1 if failures else 0


COMPARE_METRICS = (("TTFT mean (ms)", "ttft_s", "mean", 1e3), ("TTFT P99 (ms)", "ttft_s", "p99", 1e3),
                   ("TBT mean (ms)", "tbt_s", "mean", 1e3), ("TBT P99 (ms)", "tbt_s", "p99", 1e3),
                   ("E2E mean (s)", "e2e_s", "mean", 1.0),
                   ("throughput (req/s)", "throughput", "requests_per_s", 1.0),
                   ("throughput (output tok/s)", "throughput", "output_tokens_per_s", 1.0))


def _cmd_compare(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from simcxl.config.loader import load_scenario
    from simcxl.metrics.results import write_atomic
    from simcxl.simulate import simulate

    if args.seeds > 1:
        return _compare_replicated(args)
    summaries = []
    for config in args.configs:
        loaded = load_scenario(config, args.overrides)
        _warn(loaded)
        outcome = simulate(loaded, output=args.output / loaded.scenario.name if args.output else None)
        summaries.append(outcome.summary)
    names = [s["scenario"] for s in summaries]
    table = Table(title=f"simcxl compare (ratios vs {names[0]})")
    table.add_column("metric")
    for name in names:
        table.add_column(name, justify="right")
    lines = ["metric," + ",".join(names)]
    for label, section, key, scale in COMPARE_METRICS:
        values = [s[section][key] for s in summaries]
        cells = [f"{v * scale:,.2f}" if v is not None else "-" for v in values]
        if values[0]:
            cells[1:] = [f"{c} ({v / values[0]:.2f}x)" if v is not None else c for c, v in zip(cells[1:], values[1:])]
        table.add_row(label, *cells)
        lines.append(label + "," + ",".join("" if v is None else repr(v * scale) for v in values))
    Console().print(table)
    if args.output:
        write_atomic(args.output / "compare.csv", "\n".join(lines) + "\n")
        print(f"wrote {args.output / 'compare.csv'} and one results folder per scenario")
    return 0


def _compare_replicated(args: argparse.Namespace) -> int:
    """``simcxl compare --seeds N`` (N > 1): each scenario replicated with the same seeds rule, the table's
    cells mean ± 95% half-width and the ratio of means; compare.csv gains each interval's ends."""
    import tempfile

    from rich.console import Console
    from rich.table import Table

    from simcxl.config.loader import load_scenario
    from simcxl.metrics.replications import plus_minus, replica_seeds
    from simcxl.metrics.results import write_atomic
    from simcxl.sweep.runner import run_replicated

    executor = _executor(args)
    blocks, names = [], []
    with tempfile.TemporaryDirectory(prefix="simcxl-compare-") as scratch:
        for config in args.configs:
            loaded = load_scenario(config, args.overrides)
            _warn(loaded)
            out = (args.output or Path(scratch)) / loaded.scenario.name
            with _terminate_as_interrupt():
                summary = run_replicated(loaded.path, list(args.overrides), out,
                                         replica_seeds(loaded.scenario.seed, args.seeds), executor)
            blocks.append(summary["replications"])
            names.append(summary["scenario"])
    table = Table(title=f"simcxl compare, {args.seeds} seeds each: mean ± 95% half-width (Student t), "
                        f"ratio of means vs {names[0]}")
    table.add_column("metric")
    for name in names:
        table.add_column(name, justify="right")
    lines = ["metric," + ",".join(f"{n},{n} ci95_low,{n} ci95_high" for n in names)]
    for label, section, key, scale in COMPARE_METRICS:
        stats = [block["metrics"][f"{section}.{key}"] for block in blocks]
        cells = [plus_minus(st, scale) for st in stats]
        if stats[0]["mean"]:
            cells[1:] = [f"{c} ({st['mean'] / stats[0]['mean']:.2f}x)" if st["mean"] is not None else c
                         for c, st in zip(cells[1:], stats[1:])]
        table.add_row(label, *cells)
        lines.append(label + "," + ",".join(",".join("" if st[part] is None else repr(st[part] * scale)
                                                     for part in ("mean", "ci95_low", "ci95_high"))
                                            for st in stats))
    Console().print(table)
    if args.output:
        write_atomic(args.output / "compare.csv", "\n".join(lines) + "\n")
        print(f"wrote {args.output / 'compare.csv'} and one replicated results folder per scenario (seed=K/)")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from simcxl.metrics.plots import plot

    for path in plot(args.paths, args.output, args.x):
        print(f"wrote {path}")
    return 0


def _resolve_profile(value: Path, folder: str) -> Path:
    """A profile path, or a name looked up in configs/<folder>/ (here, then in the bundled configs)."""
    from simcxl.config.bundled import find_config

    return find_config(value, folder)


def _cmd_profile_gpu(args: argparse.Namespace) -> int:
    from simcxl.config.loader import load_profile, read_yaml
    from simcxl.config.schema import GPUSpec, ModelSpec
    from simcxl.metrics.results import write_atomic
    from simcxl.profiling import fit

    base_path = args.base or args.output
    from simcxl.errors import describe_file

    problem = describe_file(base_path)
    if problem is not None:
        raise SimcxlError(f"{base_path}: {problem}; give --base PROFILE with the GPU's datasheet numbers")
    base = load_profile(base_path, "gpu", GPUSpec)
    raw = args.from_csv or args.output.parent / "calibration" / args.output.stem
    if args.from_csv is None:
        from simcxl.profiling.measure import measure

        try:
            measure(raw)
        except SystemExit as exc:
            raise SimcxlError(str(exc)) from None
    for name in ("kernels.csv", "validation.csv", "info.json"):
        if not (raw / name).is_file():
            raise SimcxlError(f"{raw / name}: file not found (run `python -m simcxl.profiling.measure -o {raw}` "
                              f"on the GPU first)")
    efficiencies = fit.fit_efficiencies(fit.read_rows(raw / "kernels.csv"), base.peak_flops, base.hbm_bandwidth)
    write_atomic(args.output, fit.profile_yaml(base, efficiencies, fit.read_info(raw), (raw / "kernels.csv").as_posix()))
    gpu = load_profile(args.output, "gpu", GPUSpec)
    model = ModelSpec.model_validate(read_yaml(_resolve_profile(Path("llama-3.1-8b"), "models"))["model"])
    rows = fit.validation_rows(gpu, model, fit.read_rows(raw / "validation.csv"))
    table = fit.validation_markdown(rows, f"Llama-3.1-8B on {fit.read_info(raw)['gpu']}")
    write_atomic(raw / "validation.md", table)
    print(f"wrote {args.output}\n{table}")
    return 0


def _cmd_bench_gpu(args: argparse.Namespace) -> int:
    from simcxl.config.loader import load_profile, read_yaml
    from simcxl.config.schema import GPUSpec, ModelSpec
    from simcxl.hardware.gpu import GPUCompute
    from simcxl.hardware.model import LLM
    from simcxl.metrics.results import write_atomic

    gpu = load_profile(_resolve_profile(args.hardware, "hardware"), "gpu", GPUSpec)
    model_path = _resolve_profile(args.model, "models")
    try:
        model = ModelSpec.model_validate(read_yaml(model_path)["model"])
    except (KeyError, ValueError) as exc:
        raise SimcxlError(f"{model_path}: model: not a valid model profile ({exc})") from None
    compute = GPUCompute(gpu, LLM(model), args.tensor_parallel)
    lines = ["phase,batch,context,seconds"]
    for batch in (1, 8):
        for context in (512 * 2**i for i in range(7)):
            lines.append(f"prefill,{batch},{context},{compute.prefill_time([context] * batch)!r}")
    for batch in (1, 8, 32, 128):
        for context in (1024, 4096, 16384):
            lines.append(f"decode,{batch},{context},{compute.decode_step_time(batch, batch * context)!r}")
    write_atomic(args.output / "gpu.csv", "\n".join(lines) + "\n")
    print(f"{gpu.name} ({'calibrated' if gpu.calibrated else 'uncalibrated'}), {model.name}, TP {args.tensor_parallel}: "
          f"wrote {args.output / 'gpu.csv'}")
    return 0


def _add_executor_args(parser: argparse.ArgumentParser, jobs_help: str) -> None:
    """-j, --executor and --address, read back by :func:`_executor`."""
    parser.add_argument("-j", "--jobs", type=positive_int, default=1, help=jobs_help)
    parser.add_argument("--executor", choices=("local", "ray"), default="local")
    parser.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")


def _executor(args: argparse.Namespace):
    """The ``--executor`` (local with ``-j`` processes, or Ray at ``--address``); unavailable is a user error."""
    from simcxl.sweep.executors import make_executor

    try:
        return make_executor(args.executor, args.jobs, args.address)
    except (RuntimeError, ValueError) as exc:
        raise SimcxlError(str(exc)) from None


def _cmd_goodput(args: argparse.Namespace) -> int:
    from simcxl.config.loader import load_scenario
    from simcxl.sweep import goodput

    slos = [goodput.SLO.parse(text) for text in args.slo]
    out = args.output or Path("results") / "goodput" / load_scenario(args.config, args.overrides).scenario.name
    executor = _executor(args)
    if args.seeds > 1:
        return _goodput_replicated(args, slos, out, executor)
    search = goodput.GoodputSearch(args.config, args.overrides, slos, args.attainment, out, executor, args.jobs,
                                   args.tolerance)
    print(f"goodput of {args.config} under {', '.join(map(str, slos))}"
          + (f" (attainment >= {args.attainment:.0%})" if any(s.per_request for s in slos) else "")
          + f": searching {search.knob} from {search.start:g}, -j {args.jobs}")
    with _terminate_as_interrupt():  # SIGTERM as Ctrl-C: finished loads are kept and found by a rerun
        result = search.run()
    goodput.plot(result, out)
    if result["max_rate"] == 0:
        print(f"no load tried meets the SLOs (the lowest tried, {search.knob}={result['lowest_missed']:.4g}, misses)")
    else:
        print(f"max {search.knob} meeting the SLOs: {result['max_rate']:.4g} (missed at {result['lowest_missed']:.4g}); "
              f"wrote {out / 'goodput.json'} and goodput.png")
    return 0


def _goodput_replicated(args: argparse.Namespace, slos: list, out: Path, executor) -> int:
    """``simcxl goodput --seeds N`` (N > 1): one search per seed, in parallel, and the goodput's 95% interval."""
    from simcxl.config.loader import load_scenario
    from simcxl.metrics.replications import plus_minus, replica_seeds
    from simcxl.sweep import goodput

    loaded = load_scenario(args.config, args.overrides)
    knob = goodput.GoodputSearch(args.config, args.overrides, slos, args.attainment, out, executor, 1,
                                 args.tolerance).knob  # bad options fail here, before any line is printed
    seeds = replica_seeds(loaded.scenario.seed, args.seeds)
    print(f"goodput of {args.config} under {', '.join(map(str, slos))}"
          + (f" (attainment >= {args.attainment:.0%})" if any(s.per_request for s in slos) else "")
          + f": {args.seeds} searches, seeds {seeds[0]}..{seeds[-1]}, one load at a time each, {args.jobs} at once")
    with _terminate_as_interrupt():
        result = goodput.replicated_goodput(loaded.path, list(args.overrides), slos, args.attainment, out, executor,
                                            args.tolerance, seeds)
    goodput.plot(result, out)
    print(f"goodput: {plus_minus(result['replications']['metrics']['max_rate'], digits=3)} {knob} "
          f"(mean ± 95% half-width over {args.seeds} seeds, Student t); wrote {out / 'goodput.json'} and goodput.png")
    for entry in result.get("attainment_curve", []):
        outside = f" (edge outside the runs for seeds {entry['edge_outside_runs_for_seeds']})" \
            if "edge_outside_runs_for_seeds" in entry else ""
        width = "" if entry["widest_bracket"] is None else f" (brackets up to {entry['widest_bracket']:.1%} wide)"
        print(f"  at attainment {entry['attainment']:.0%}: {plus_minus(entry['max_rate'], digits=3)}{width}{outside}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from simcxl.sweep import plan as planning

    plan = planning.load_plan(args.spec)
    if args.search and plan.spec.search is None:
        raise SimcxlError(f"{args.spec}: search: missing: --search explores the deployments a search: section "
                          f"describes (gpus, tensor_parallel, also); see simcxl/sweep/search.py")
    out = args.output or Path("results") / "plan" / args.spec.stem
    executor = _executor(args)
    goal = f"target {plan.spec.target:g}" if plan.spec.target is not None else "best goodput per GPU"
    pruned = sum(point.pruned is not None for point in plan.points)
    print(f"plan {args.spec}: {len(plan.points)} configuration(s)" + (f" ({pruned} pruned: they cannot fit)" if pruned
          else "") + f", {goal} under {', '.join(map(str, plan.slos))}, -j {args.jobs}")
    if args.seeds > 1:
        print(f"  each point: {args.seeds} goodput searches (seeds S..S+{args.seeds - 1}), the mean ranked, "
              "its 95% interval (Student t) in plan.csv")
    with _terminate_as_interrupt():
        result = planning.run_plan(plan, out, executor, args.jobs, seeds=args.seeds)
    planning.plot(result, out)
    for row in result["points"]:
        if row["status"] == "failed":
            print(f"point {row['point']} could not run and is not counted: {row['note'].removeprefix('failed: ')}",
                  file=sys.stderr)
    if plan.spec.search is not None:
        print("rank  deployment           goodput  per GPU  per $M   cost")
        for row in result["points"]:
            if row["status"] == "ran":
                spread = (f"  [{row['goodput_ci95_low']:.4g}, {row['goodput_ci95_high']:.4g}]"
                          if "goodput_ci95_low" in row else "")
                print(f"{row['rank']:>4}  {row['deployment']:<18} {row['goodput']:>8.4g}{'+' if row['goodput_bound'] else ' '}"
                      f" {row['goodput_per_gpu']:>8.3f} {row['goodput_per_musd']:>7.3f} ${row['cost_usd']:,.0f}{spread}")
    choice = result["cheapest_meeting_target"]
    if plan.spec.target is None:
        best = result["best_per_gpu"]
        print(f"best goodput per GPU: {best['point']} ({best['goodput']:.4g} in all)" if best else
              "no configuration ran", end="")
        print(f"; wrote {out / 'plan.csv'}, plan.json and plan.png")
    elif choice is None:
        print(f"no configuration meets the target {plan.spec.target:g}; wrote {out / 'plan.csv'} and plan.png")
    else:
        print(f"cheapest meeting the target: point {choice['point']} (goodput {choice['goodput']:.4g}, "
              f"${choice['cost_usd']:,.0f}); wrote {out / 'plan.csv'}, plan.json and plan.png")
    return 0


def _cmd_model_from_hf(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from simcxl.config.hf_import import model_from_hf, read_hf_config
    from simcxl.config.schema import ModelSpec
    from simcxl.metrics.results import write_atomic

    imported = model_from_hf(read_hf_config(args.config), args.config, args.name, args.dtype)
    try:
        ModelSpec.model_validate(imported.fields)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if not where:  # a check across fields (heads and kv_heads): no single field to name
            raise SimcxlError(f"{args.config}: the imported model is not valid: {message}") from None
        source = imported.comments.get(where, "")
        key = source.split(" ")[0] if source and source.split(" ")[0] in read_hf_config(args.config) else None
        raise SimcxlError(f"{args.config}: {key or 'the imported model.' + where}: {message}"
                          + (f" (it sets model.{where})" if key else "")) from None
    if args.output is None:
        print(imported.to_yaml(), end="")
        return 0
    write_atomic(args.output, imported.to_yaml())
    print(f"wrote {args.output} ({imported.fields['name']}; use it with include: or model: {{hf_config: ...}})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simcxl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"simcxl {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="simulate a scenario and write a results folder")
    _add_scenario_args(run)
    run.add_argument("-o", "--output", type=Path, help="results folder (default: results/<scenario name>)")
    run.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    run.add_argument("--timeline", action="store_true",
                     help="also write timeline.json (Chrome trace format: open it in ui.perfetto.dev)")
    run.add_argument("--timeline-window", type=_window, metavar="START:END",
                     help="record the timeline only between these simulated seconds (implies --timeline)")
    run.add_argument("--timeline-max-events", type=positive_int, default=None, metavar="N",
                     help="stop recording after N trace events (default 1,000,000, about 150 MB; implies --timeline)")
    _add_seeds_arg(run)
    _add_executor_args(run, jobs_help="replications run in parallel (with --seeds; default 1)")
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
    gpu = bench.add_parser("gpu", help="predicted prefill and decode-step latency of a model on a GPU")
    gpu.add_argument("--hardware", type=Path, required=True, help="GPU profile path or name (e.g. h100_sxm)")
    gpu.add_argument("--model", type=Path, required=True, help="model profile path or name (e.g. llama-3.1-8b)")
    gpu.add_argument("--tensor-parallel", type=positive_int, default=1)
    gpu.add_argument("-o", "--output", type=Path, required=True, help="folder for gpu.csv")
    gpu.set_defaults(func=_cmd_bench_gpu)

    compare = commands.add_parser("compare", help="run several scenarios and show them side by side")
    compare.add_argument("configs", type=Path, nargs="+", help="scenario YAMLs (the first is the reference)")
    compare.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                         help="override applied to every scenario (e.g. the same workload)")
    compare.add_argument("-o", "--output", type=Path, help="write compare.csv and each run's results folder here")
    _add_seeds_arg(compare)
    _add_executor_args(compare, jobs_help="replications run in parallel (with --seeds; default 1)")
    compare.set_defaults(func=_cmd_compare)

    plot = commands.add_parser("plot", help="figures (PNG and PDF) from a sweep folder or run folders")
    plot.add_argument("paths", type=Path, nargs="+", help="sweep folders and/or run results folders")
    plot.add_argument("-o", "--output", type=Path, required=True)
    plot.add_argument("--x", help="sweep key for the x axis (default: the first numeric swept key)")
    plot.set_defaults(func=_cmd_plot)

    sweep = commands.add_parser("sweep", help="run a base scenario over a grid of overrides (resumable)")
    sweep.add_argument("spec", type=Path, help="sweep spec YAML (base, grid, points)")
    sweep.add_argument("-o", "--output", type=Path, required=True, help="sweep folder (points/, sweep.csv)")
    _add_executor_args(sweep, jobs_help="local worker processes (default 1)")
    sweep.set_defaults(func=_cmd_sweep)

    goodput = commands.add_parser("goodput", help="the highest load meeting latency SLOs (bisection, resumable)")
    _add_scenario_args(goodput)
    goodput.add_argument("--slo", action="append", default=[], metavar="NAME=DURATION", required=True,
                         help="an SLO: per request (ttft, tpot, tbt_max, e2e) or a statistic (ttft_p99, tbt_p99, "
                              "tpot_mean, ...), e.g. --slo ttft_p99=2s --slo tbt_p99=100ms (repeatable)")
    goodput.add_argument("--attainment", type=float, default=0.9,
                         help="share of requests that must meet every per-request SLO (default 0.9, DistServe's)")
    goodput.add_argument("--tolerance", type=float, default=0.02,
                         help="stop when the bracket is within this relative width (default 0.02, at least 1e-4)")
    goodput.add_argument("-o", "--output", type=Path, help="folder (default results/goodput/<scenario name>)")
    _add_executor_args(goodput, jobs_help="loads run in parallel per round (with --seeds: searches run in parallel)")
    _add_seeds_arg(goodput)
    goodput.set_defaults(func=_cmd_goodput)

    plan = commands.add_parser("plan", help="goodput and cost over a grid of configurations; the cheapest meeting "
                                            "a target")
    plan.add_argument("spec", type=Path, help="plan YAML: base, grid/points, slo, target, costs, search")
    plan.add_argument("--search", action="store_true",
                      help="explore the deployments of the spec's search: section (aggregated or disaggregated, "
                           "P:D ratio, TP degree) and rank them by goodput per GPU; target is then optional")
    plan.add_argument("-o", "--output", type=Path, help="folder (default results/plan/<spec name>)")
    _add_seeds_arg(plan)
    _add_executor_args(plan, jobs_help="loads run in parallel per search round (with --seeds: searches in parallel)")
    plan.set_defaults(func=_cmd_plan)

    model = commands.add_parser("model", help="model profiles").add_subparsers(dest="what", required=True)
    from_hf = model.add_parser("from-hf", help="a model profile from a Hugging Face config.json")
    from_hf.add_argument("config", type=Path, help="the model's config.json")
    from_hf.add_argument("-o", "--output", type=Path, help="profile YAML to write (default: print it)")
    from_hf.add_argument("--name", help="the model's name (default: the folder holding config.json)")
    from_hf.add_argument("--dtype", choices=("bf16", "fp16", "fp8", "int4"),
                         help="price the weights in this dtype (for a quantization the roofline does not price)")
    from_hf.set_defaults(func=_cmd_model_from_hf)

    profile = commands.add_parser("profile-gpu", help="calibrate a GPU profile on a real CUDA GPU (needs PyTorch)")
    profile.add_argument("-o", "--output", type=Path, required=True, help="GPU profile to write")
    profile.add_argument("--base", type=Path, help="profile with the datasheet peaks (default: the output file)")
    profile.add_argument("--from-csv", type=Path, help="fit from measurements already taken (no GPU needed)")
    profile.set_defaults(func=_cmd_profile_gpu)
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
    except Exception as exc:  # a bug in simcxl: say so, keep the traceback for the report
        if args.debug:
            raise
        report = _write_traceback()
        print(f"simcxl: internal error (a bug in simcxl, not in your input): {type(exc).__name__}: {exc}; "
              f"the full traceback is in {report} (or rerun with --debug to show it)", file=sys.stderr)
        return EXIT_INTERNAL_ERROR


def _write_traceback() -> str:
    """The current exception's traceback, in a new file under the temporary folder; its path."""
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="simcxl-traceback-", suffix=".txt")
    with open(fd, "w", encoding="utf-8") as handle:
        handle.write(f"simcxl {__version__}: {' '.join(sys.argv)}\n\n{traceback.format_exc()}")
    return path


if __name__ == "__main__":
    sys.exit(main())
