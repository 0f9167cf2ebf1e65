"""``simcxl plot``: figures from sweeps and runs, matplotlib only, each as PNG and PDF.

From a sweep folder (``sweep.csv``): TTFT, TBT and throughput against a swept key, one line per
combination of the other keys, with the P50-P99 band shaded. From run folders (``summary.json`` and
``requests.csv``): the TTFT CDF of each run, the mean TTFT broken into its parts, and GPU and link
utilization side by side, and (instances.csv) KV occupancy, queue and batch, tokens per iteration, MFU and
MBU over time; from a run recorded with ``--timeline``, a window of its timeline drawn as
Perfetto shows it (one row per GPU instance, KV transfers in lanes below, arrows from prefill to first token).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from simcxl.errors import SimcxlError


STYLE = Path(__file__).with_name("simcxl.mplstyle")
"""The one figure style of every simcxl plot (shipped as package data)."""

LABELS: dict[str, str] = {
    # swept keys and axes: what the value is, and its unit in parentheses
    "workload.rate": "offered load (req/s)",
    "workload.time_scale": "trace speed-up (x recorded arrival rate)",
    "workload.num_requests": "requests (count)",
    "workload.first": "requests replayed (count)",
    "workload.concurrency": "closed-loop clients (count)",
    "workload.rounds": "rounds (count)",
    "cluster.prefill_nodes": "prefill nodes (count)",
    "cluster.decode_nodes": "decode nodes (count)",
    "cluster.gpus_per_node": "GPUs per node (count)",
    "cluster.tensor_parallel": "tensor parallelism (GPUs)",
    "cluster.nics_per_node": "NICs per node (count)",
    "serving.decode.max_batch_size": "decode batch limit (requests)",
    "serving.prefill.max_batch_size": "prefill batch limit (requests)",
    "serving.prefill.max_batch_tokens": "prefill batch limit (tokens)",
    "kv_manager.descriptor_time": "cost per descriptor (s)",
    "seed": "seed (index)",
    # systems: kv_manager.type
    "rdma": "RDMA push", "rdma_pull": "RDMA pull", "nixl": "NIXL (RDMA read)", "lmcache": "LMCache (DRAM)",
    "rdma_pool": "RDMA memory pool", "cxl_block": "CXL pool (blocks)", "cxl_sparse": "SAC (CXL, sparse)",
    "rdma_sparse": "RDMA pool (sparse)", "host_sparse": "host DRAM (sparse)",
    # systems: the bundled scenarios (configs/*.yaml, configs/papers/*/*.yaml) by name
    "sac": "SAC (CXL, sparse)", "sac_rdma": "RDMA pool (sparse)", "sac_rdma_hbm": "RDMA, KV in HBM (sparse)",
    "tract": "TraCT (CXL)", "tract_nocache": "TraCT (CXL, no prefix cache)", "tract_rdma": "RDMA (NIXL)",
    "tract_dram": "RDMA + node DRAM cache", "tract_mooncake": "RDMA + Mooncake store",
    "beluga": "Beluga (CXL pool)", "vllm_beluga": "Beluga (CXL pool)", "beluga_mooncake": "Mooncake (RDMA store)",
    "vllm_mooncake": "vLLM + Mooncake (RDMA)", "dynamo": "Dynamo (NIXL)", "vllm": "vLLM (HBM only)",
    "kvdirect": "KVDirect (pull)", "kvdirect_push": "vLLM v0 (push)", "pull": "KVDirect pull",
    "push": "KVDirect push", "vllm_v0": "vLLM v0 (message-based)", "rdma_mooncake": "RDMA + Mooncake store",
    "hbm": "HBM only", "local_dram": "local DRAM (upper bound)",
}
"""Human labels of swept keys (with units) and of systems (KV managers and bundled scenarios), one table for all
figures. A key or name not in it is shown as it is written."""

POINT_ID = re.compile(r"^\d{4}-[0-9a-f]{8}$")
"""A sweep point's folder name (``0000-53479067``): never a legend label."""

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")


def label(name: str) -> str:
    """The human label of a swept key or a system; a key not in LABELS keeps its name, marked as in scenario
    units so that no axis goes without a unit."""
    if name in LABELS:
        return LABELS[name]
    return name if "." not in name else f"{name} (scenario units)"


def series_style(i: int) -> dict:
    """Marker and line style of the ``i``-th series: coincident lines stay distinguishable (an earlier series'
    markers are larger and hollow, so a later one's sit inside them)."""
    return {"marker": MARKERS[i % len(MARKERS)], "linestyle": LINESTYLES[i % len(LINESTYLES)],
            "markersize": max(3.5, 7 - 1.5 * i), **({"markerfacecolor": "none"} if i % 2 == 0 else {})}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.style.use(STYLE)
    return plt


def use_style():
    """Apply simcxl's figure style (``simcxl.mplstyle``) to every figure drawn after it, and return pyplot:
    the one call an experiment script makes to draw as ``simcxl plot`` does."""
    return _pyplot()


def legend_outside(ax, **kwargs):
    """The axes' legend to the right of its data (never over it)."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, **kwargs)


def figure_legend(fig, ax, ncols: int = 4):
    """One legend for all panels of ``fig`` (their series are the same), below them."""
    handles, labels = ax.get_legend_handles_labels()
    return fig.legend(handles, labels, loc="outside lower center", ncols=min(ncols, max(1, len(labels))))


def interval_columns(table: pd.DataFrame, column: str) -> tuple[str, str] | None:
    """The 95%-interval columns of ``column`` (``COLUMN_ci95_low``/``_high`` or ``COLUMN.ci95_low``/``.high``) if
    the table has them (replicated runs), else None."""
    for sep in ("_", "."):
        low, high = f"{column}{sep}ci95_low", f"{column}{sep}ci95_high"
        if low in table.columns and high in table.columns:
            return low, high
    return None


def draw_series(ax, table: pd.DataFrame, x: str, column: str, scale: float = 1.0, **style):
    """``column`` against ``x``; with its 95% interval as error bars where the table has one
    (:func:`interval_columns`), drawn by :func:`simcxl.metrics.replications.draw_interval`."""
    bounds = interval_columns(table, column)
    if bounds is None:
        line, = ax.plot(table[x], table[column] * scale, **style)
        return line.get_color()
    from simcxl.metrics.replications import draw_interval

    stats = [{"mean": m, "ci95_low": lo, "ci95_high": hi}
             for m, lo, hi in zip(table[column], table[bounds[0]], table[bounds[1]])]
    marker, linestyle = style.pop("marker", "o"), style.pop("linestyle", "-")
    draw_interval(ax, list(table[x]), stats, scale, fmt=f"{marker}{linestyle}", **style)
    return ax.lines[-1].get_color()


def time_unit(seconds) -> tuple[str, float]:
    """The unit to show durations in: ms below 10 s at the largest, else s (no 1e6 offsets on an axis)."""
    largest = max((float(v) for v in seconds if pd.notna(v)), default=0.0)
    return ("ms", 1e3) if largest < 10 else ("s", 1.0)


def log_ticks(axis) -> None:
    """Plain-number labels on a log axis at 1, 2, 5 per decade, minor ticks unlabelled: labels that do not
    collide (matplotlib labels every minor tick of a log axis spanning less than a decade)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=12))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


OFFSETS = ((4, 4), (4, -10), (-4, 4), (-4, -10), (4, 14), (-4, 14), (4, -20), (-4, -20), (12, -3), (-12, -3))
"""Where :func:`label_points` tries a label, in points from its marker: right-above first, then around it."""


def label_points(ax, xs, ys, texts, fontsize: float = 7) -> list:
    """Label each point with its text at the first of OFFSETS where it overlaps no label placed before it
    (plan.png's point labels overprinted when points crowd); a label with no free place is drawn at the last
    offset tried. Returns the text artists."""
    fig = ax.figure
    fig.draw_without_rendering()  # settle the layout first, so that the boxes compared are the final ones
    renderer = fig.canvas.get_renderer()
    placed, artists = [], []
    for x, y, text in zip(xs, ys, texts):
        for dx, dy in OFFSETS:
            artist = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                                 ha="left" if dx >= 0 else "right", va="bottom" if dy >= 0 else "top")
            box = artist.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            artist.remove()
        else:
            artist = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize)
            box = artist.get_window_extent(renderer)
        placed.append(box)
        artists.append(artist)
    return artists


def _save(fig, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path)
    _pyplot().close(fig)
    return paths


def _read(path: Path, parse):
    """``parse(path)``, with a damaged or foreign file reported as the user's to fix, naming it."""
    try:
        return parse(path)
    except (ValueError, OSError) as exc:  # JSON, CSV and decoding errors are ValueErrors
        raise SimcxlError(f"{path}: cannot read it as a simcxl result ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else 'empty'}); rerun what wrote it") from None


def _read_json(path: Path) -> dict:
    summary = _read(path, lambda p: json.loads(p.read_text(encoding="utf-8")))
    if not isinstance(summary, dict):
        raise SimcxlError(f"{path}: expected a JSON object (a simcxl summary), got {type(summary).__name__}")
    return summary


def _columns(table: pd.DataFrame, path: Path, *needed: str) -> pd.DataFrame:
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise SimcxlError(f"{path}: missing column(s) {', '.join(missing)}: not a file simcxl wrote")
    return table


def _value(key: str, value) -> str:
    """A swept value in a legend: a system's label for ``kv_manager.type``, else the number or word."""
    if key.endswith(".type"):
        return LABELS.get(str(value), str(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _series_name(keys: list[str], values) -> str:
    """A legend label for one combination of swept values, in words (``RDMA pull``, ``decode nodes 2``)."""
    values = values if isinstance(values, tuple) else (values,)
    parts = []
    for key, value in zip(keys, values):
        if key.endswith(".type"):
            parts.append(_value(key, value))
        else:
            name = label(key)
            unit = name[name.rfind("(") + 1:-1] if name.endswith(")") else ""
            name = name[:name.rfind(" (")] if unit else name
            parts.append(f"{name} {_value(key, value)}" + (f" {unit}" if unit not in ("", "count", "index") else ""))
    return ", ".join(parts) or "all points"


def plot_sweep(folder: Path, out: Path, x: str | None = None) -> list[Path]:
    """TTFT and TBT (mean, P50-P99 band; 95% intervals where replicated) and throughput against a swept key."""
    path = folder / "sweep.csv"
    table = _columns(_read(path, pd.read_csv), path, "point", "scenario", "ttft_s.mean", "tbt_s.mean",
                     "throughput.output_tokens_per_s")
    columns = list(table.columns)
    keys = columns[1:columns.index("scenario")]  # sweep.csv: point, the swept keys, then the summary
    numeric = [k for k in keys if pd.api.types.is_numeric_dtype(table[k]) and table[k].nunique() > 1]
    x = x or (numeric[0] if numeric else None)
    if x is None or x not in table.columns:
        raise SimcxlError(f"{folder / 'sweep.csv'}: no numeric swept key to plot against (give --x KEY)")
    series = [k for k in keys if k != x and table[k].nunique() > 1]
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    groups = table.groupby(series, sort=False) if series else [((), table)]
    units = [time_unit(table.get(f"{metric}.p99", table[f"{metric}.mean"])) for metric in ("ttft_s", "tbt_s")]
    for i, (values, group) in enumerate(groups):
        group = group.sort_values(x)
        style = {**series_style(i), "label": _series_name(series, values)}
        for ax, metric, (_, scale) in zip(axes[:2], ("ttft_s", "tbt_s"), units):
            color = draw_series(ax, group, x, f"{metric}.mean", scale, **style)
            if f"{metric}.p50" in group and f"{metric}.p99" in group:
                ax.fill_between(group[x], group[f"{metric}.p50"] * scale, group[f"{metric}.p99"] * scale, alpha=0.12,
                                color=color, linewidth=0)
        draw_series(axes[2], group, x, "throughput.output_tokens_per_s", **style)
    ylabels = (f"TTFT ({units[0][0]})", f"TBT ({units[1][0]})", "throughput (output tokens/s)")
    for ax, ylabel, title in zip(axes, ylabels, ("TTFT: mean, P50-P99 band", "TBT: mean, P50-P99 band", "throughput")):
        ax.set_xlabel(label(x))
        ax.set_ylabel(ylabel)
        ax.set_title(title)
    axes[0].set_yscale("log")
    log_ticks(axes[0].yaxis)
    figure_legend(fig, axes[0])
    return _save(fig, out, "sweep")


def _load_run(folder: Path) -> tuple[str, dict, pd.DataFrame]:
    summary = _read_json(folder / "summary.json")
    for section in ("ttft_breakdown_s", "utilization"):
        if not isinstance(summary.get(section), dict):
            raise SimcxlError(f"{folder / 'summary.json'}: {section}: missing: not a summary simcxl wrote")
    requests = _read(folder / "requests.csv", pd.read_csv)
    return run_label(folder, summary), summary, _columns(requests, folder / "requests.csv", "ttft_s")


def run_label(folder: Path, summary: dict) -> str:
    """A run's legend label: its folder name; for a sweep point (``points/0000-53479067``) its swept values in
    words, read from the sweep's sweep.csv, or its scenario's label. Never the point id."""
    if not POINT_ID.match(folder.name):
        return folder.name
    sweep = folder.parent.parent / "sweep.csv"
    if folder.parent.name == "points" and sweep.is_file():
        table = pd.read_csv(sweep)
        row = table[table.point == folder.name]
        if len(row) and "scenario" in table.columns:
            keys = list(table.columns[1:list(table.columns).index("scenario")])
            varying = [k for k in keys if table[k].nunique() > 1]
            return _series_name(varying, tuple(row.iloc[0][k] for k in varying))
    return label(str(summary.get("scenario", "run")))


def plot_runs(folders: list[Path], out: Path) -> list[Path]:
    runs = [_load_run(folder) for folder in folders]
    plt = _pyplot()
    paths = []
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for i, (name, _, requests) in enumerate(runs):
        ttft = requests.ttft_s.dropna().sort_values() * 1e3
        ax.plot(ttft, (pd.RangeIndex(1, len(ttft) + 1) / len(ttft)), label=name,
                linestyle=LINESTYLES[i % len(LINESTYLES)])
    ax.set_xscale("log")
    log_ticks(ax.xaxis)
    ax.set_xlabel("TTFT (ms)")
    ax.set_ylabel("fraction of requests (0-1)")
    ax.set_ylim(0, 1.02)
    ax.set_title("TTFT CDF")
    ax.grid(True, which="both", alpha=0.3)
    legend_outside(ax)
    paths += _save(fig, out, "ttft_cdf")

    fig, ax = plt.subplots(figsize=(max(4.8, 1.3 * len(runs) + 3), 3.6))
    bottoms = [0.0] * len(runs)
    for part in runs[0][1]["ttft_breakdown_s"]:
        values = [(s["ttft_breakdown_s"].get(part) or 0.0) * 1e3 for _, s, _ in runs]
        ax.bar(range(len(runs)), values, bottom=bottoms, label=part.replace("_", " "))
        bottoms = [b + v for b, v in zip(bottoms, values)]
    ax.set_xticks(range(len(runs)), [name for name, _, _ in runs], rotation=20 if len(runs) > 3 else 0,
                  ha="right" if len(runs) > 3 else "center")
    ax.set_ylabel("mean TTFT (ms)")
    ax.set_title("where TTFT goes")
    legend_outside(ax)
    paths += _save(fig, out, "ttft_breakdown")

    labels = sorted({k for _, s, _ in runs for k in s["utilization"]["gpu"]} |
                    {f"link:{k}" for _, s, _ in runs for k in s["utilization"]["link"]})
    fig, ax = plt.subplots(figsize=(max(6.4, 0.6 * len(labels) + 2.5), 3.8))
    width = 0.8 / len(runs)
    for i, (name, summary, _) in enumerate(runs):
        util = summary["utilization"]
        values = [100 * (util["gpu"].get(k, 0.0) if not k.startswith("link:")
                         else util["link"].get(k[5:], {}).get("mean", 0.0)) for k in labels]
        ax.bar([j + i * width for j in range(len(labels))], values, width=width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))], [k.replace("_", " ") for k in labels],
                  rotation=30, ha="right")
    ax.set_ylabel("mean utilization (%)")
    ax.set_title("GPU busy and link utilization")
    legend_outside(ax)
    paths += _save(fig, out, "utilization")
    return paths


def plot_timeseries(folders: list[Path], out: Path) -> list[Path]:
    plt = _pyplot()
    fig, (gpu, link) = plt.subplots(1, 2, figsize=(11, 3.4))
    for folder in folders:
        series = _columns(_read(folder / "timeseries.csv", pd.read_csv), folder / "timeseries.csv", "time_s")
        name = run_label(folder, {})
        for column in series.columns[1:]:
            ax = gpu if column.startswith("gpu.") else link
            ax.plot(series.time_s, 100 * series[column], linewidth=1,
                    label=f"{name}: {column.split('.', 1)[1]}" if len(folders) > 1 else column.split(".", 1)[1])
    for ax, title in ((gpu, "GPU busy over time"), (link, "link utilization over time (all links of a kind)")):
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel("busy (%)" if ax is gpu else "utilization (%)")
        ax.set_title(title)
        legend_outside(ax)
    return _save(fig, out, "utilization_over_time")


def plot_instances(folder: Path, out: Path) -> list[Path]:
    """A run's instances.csv: KV occupancy, queue and batch, tokens per iteration, MFU and MBU over time, each
    the mean over the instances of a role (one line per role)."""
    path = folder / "instances.csv"
    table = _columns(_read(path, pd.read_csv), path, "time_s", "role", "kv_blocks_used", "kv_blocks_total",
                     "waiting", "running", "tokens_per_iteration", "mfu", "mbu")
    table = table.assign(kv_percent=100 * table.kv_blocks_used / table.kv_blocks_total.where(table.kv_blocks_total > 0),
                         mfu_percent=100 * table.mfu, mbu_percent=100 * table.mbu)
    means = table.groupby(["role", "time_s"], sort=False).mean(numeric_only=True).reset_index()
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 5.8))
    panels = [(axes[0][0], [("kv_percent", "")], "KV blocks in use", "KV blocks in use (% of HBM KV room)"),
              (axes[0][1], [("waiting", "waiting"), ("running", "running")], "queue and batch",
               "requests per instance (count)"),
              (axes[1][0], [("tokens_per_iteration", "")], "tokens per iteration", "tokens per iteration (count)"),
              (axes[1][1], [("mfu_percent", "MFU"), ("mbu_percent", "MBU")], "MFU and MBU",
               "% of datasheet peak (%)")]
    for ax, columns, title, ylabel in panels:
        for r, (role, rows) in enumerate(means.groupby("role", sort=False)):
            for c, (column, name) in enumerate(columns):
                ax.plot(rows.time_s, rows[column], label=f"{role} {name}".strip(), linewidth=1,
                        color=f"C{r}", linestyle=LINESTYLES[c % len(LINESTYLES)])
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        if "tokens" in ylabel:  # a prefill pass is ~100x a decode iteration
            ax.set_yscale("log")
        legend_outside(ax)
    for ax in axes.flat:
        ax.set_xlabel("simulated time (s)")
    fig.suptitle(f"{run_label(folder, {})}: per instance, mean over each role's instances")
    return _save(fig, out, f"instances_{folder.name}")


def plot_rate_sweep(rows: list[dict], path: Path, rate_label: str) -> None:
    """experiments/rate_sweep.py's rows (scenario, rate, ttft_mean_s, ttft_p99_s, throughput_rps; 95% intervals
    where ``*_ci95_low/high`` keys are present): mean TTFT, P99 TTFT and throughput against the offered load."""
    table = pd.DataFrame(rows)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    mean_unit, mean_scale = time_unit(table.ttft_mean_s)
    p99_unit, p99_scale = time_unit(table.ttft_p99_s)
    for i, (scenario, group) in enumerate(table.groupby("scenario", sort=False)):
        style = {**series_style(i), "label": label(str(scenario))}
        draw_series(axes[0], group, "rate", "ttft_mean_s", mean_scale, **style)
        draw_series(axes[1], group, "rate", "ttft_p99_s", p99_scale, **style)
        draw_series(axes[2], group, "rate", "throughput_rps", **style)
    for ax, ylabel in zip(axes, (f"mean TTFT ({mean_unit})", f"P99 TTFT ({p99_unit})", "throughput (req/s)")):
        ax.set_xlabel(rate_label)
        ax.set_ylabel(ylabel)
    for ax in axes[:2]:
        ax.set_yscale("log")
        log_ticks(ax.yaxis)
    figure_legend(fig, axes[0])
    fig.savefig(path)
    plt.close(fig)


BREAKDOWN_PARTS = ("queue_s", "prefix_load_s", "prefill_s", "decode_wait_s", "kv_sync_s", "kv_transfer_s",
                   "first_decode_s")


def plot_rate_breakdown(rows: list[dict], rate: float, path: Path, rate_label: str) -> None:
    """Stacked mean-TTFT parts of every scenario at one offered load (``rate``, in ``rate_label``'s unit), each
    bar's total above it."""
    at = [r for r in rows if r["rate"] == rate]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.8, 1.2 * len(at) + 3), 3.6))
    bottoms = [0.0] * len(at)
    unit, scale = time_unit([sum(r[part] for part in BREAKDOWN_PARTS) for r in at])
    for part in BREAKDOWN_PARTS:
        values = [r[part] * scale for r in at]
        ax.bar(range(len(at)), values, bottom=bottoms, label=part.removesuffix("_s").replace("_", " "))
        bottoms = [b + v for b, v in zip(bottoms, values)]
    for x, total in enumerate(bottoms):
        text = f"{total:,.0f} {unit}" if total >= 10 else f"{total:.2g} {unit}"
        ax.annotate(text, (x, total), xytext=(0, 2), textcoords="offset points", ha="center",
                    va="bottom", fontsize=7)
    ax.set_ylim(0, max(bottoms, default=1) * 1.12)
    ax.set_xticks(range(len(at)), [label(r["scenario"]) for r in at], rotation=20 if len(at) > 2 else 0,
                  ha="right" if len(at) > 2 else "center")
    ax.set_ylabel(f"mean TTFT ({unit})")
    rate_unit = rate_label[rate_label.rfind("(") + 1:-1] if rate_label.endswith(")") else ""
    ax.set_title(f"where TTFT goes at {rate:g} {rate_unit}".rstrip())
    legend_outside(ax)
    fig.savefig(path)
    plt.close(fig)


def plot_timeline(folder: Path, out: Path, span: float = 0.2) -> list[Path]:
    """``span`` seconds of a run's timeline.json, from where half its slices have begun."""
    trace = _read_json(folder / "timeline.json")
    events = trace.get("traceEvents") if isinstance(trace, dict) else None
    if not isinstance(events, list):
        raise SimcxlError(f"{folder / 'timeline.json'}: not a simcxl timeline (no traceEvents list)")
    names = {(e["pid"], e.get("tid")): e["args"]["name"] for e in events if e.get("ph") == "M"}
    slices = [e for e in events if e.get("ph") == "X"]
    if not slices:
        raise SimcxlError(f"{folder / 'timeline.json'}: no slices to draw (an empty window?)")
    start = sorted(e["ts"] for e in slices)[len(slices) // 2] / 1e6
    end = start + span
    tracks = sorted({(e["pid"], e["tid"]) for e in slices})
    rows = {track: i for i, track in enumerate(tracks)}
    transfers = _transfers(events, start, end)
    lanes = _lanes(transfers)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 0.3 * (len(tracks) + max(lanes, default=-1) + 2) + 1.2))
    colors = {}
    for e in slices:
        s, d = e["ts"] / 1e6, e["dur"] / 1e6
        if s + d >= start and s <= end:
            color = colors.setdefault(e["name"], f"C{len(colors)}")
            ax.broken_barh([(s - start, d)], (rows[(e["pid"], e["tid"])] - 0.4, 0.8), color=color, linewidth=0.3,
                           edgecolor="white", label=e["name"])
    base = len(tracks)
    for (s, e, name), lane in zip(transfers, lanes):
        color = colors.setdefault(name, f"C{len(colors)}")
        ax.broken_barh([(s - start, e - s)], (base + lane - 0.35, 0.7), color=color, alpha=0.8, label=name)
    flows = {}
    for e in events:
        if e.get("ph") in ("s", "f") and (e["pid"], e["tid"]) in rows:
            flows.setdefault(e["id"], {})[e["ph"]] = (e["ts"] / 1e6 - start, rows[(e["pid"], e["tid"])])
    for ends in flows.values():  # request lifecycles: prefill batch -> first-token iteration
        if len(ends) == 2 and ends["s"][0] <= span and ends["f"][0] >= 0:
            ax.annotate("", xy=ends["f"], xytext=ends["s"],
                        arrowprops={"arrowstyle": "->", "color": "0.3", "linewidth": 0.6, "alpha": 0.7})
    labels = [f"{names.get((pid, None), pid)} / {names.get((pid, tid), tid)}" for pid, tid in tracks]
    labels += [f"KV lane {lane}" for lane in range(max(lanes, default=-1) + 1)]
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, span)
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v * 1e3:g}"))
    ax.set_xlabel(f"simulated time after {start:.3f} s (ms)")
    ax.grid(False)
    handles = {name: h for h, name in zip(*ax.get_legend_handles_labels())}
    legend_outside(ax, handles=list(handles.values()), labels=list(handles.keys()))
    ax.set_title(f"{run_label(folder, {})}: timeline ({span * 1e3:.0f} ms; open timeline.json in ui.perfetto.dev "
                 "for all of it)")
    return _save(fig, out, f"timeline_{folder.name}")


def _transfers(events: list[dict], start: float, end: float) -> list[tuple[float, float, str]]:
    """Async slices (KV transfers, loads, fetches) overlapping [start, end], as (begin, end, name)."""
    begins = {}
    found = []
    for e in events:
        if e.get("ph") == "b":
            begins[(e["pid"], e["id"])] = e
        elif e.get("ph") == "e" and (e["pid"], e["id"]) in begins:
            b = begins.pop((e["pid"], e["id"]))
            if e["ts"] / 1e6 >= start and b["ts"] / 1e6 <= end:
                found.append((b["ts"] / 1e6, e["ts"] / 1e6, b["name"]))
    return sorted(found)


def _lanes(spans: list[tuple[float, float, str]]) -> list[int]:
    """The first free lane of each span (sorted by start), so overlapping transfers stack."""
    ends: list[float] = []
    lanes = []
    for s, e, _ in spans:
        lane = next((i for i, last in enumerate(ends) if last <= s), len(ends))
        if lane == len(ends):
            ends.append(e)
        else:
            ends[lane] = e
        lanes.append(lane)
    return lanes


def plot(paths: list[Path], out: Path, x: str | None = None) -> list[Path]:
    written: list[Path] = []
    runs = []
    for path in paths:
        if (path / "sweep.csv").is_file():
            written += plot_sweep(path, out, x)
        elif (path / "summary.json").is_file() and (path / "requests.csv").is_file():
            runs.append(path)
        else:
            raise SimcxlError(f"{path}: neither a sweep folder (sweep.csv) nor a run folder "
                              "(summary.json, requests.csv)")
    if runs:
        written += plot_runs(runs, out)
        with_series = [run for run in runs if (run / "timeseries.csv").is_file()]
        if with_series:
            written += plot_timeseries(with_series, out)
        for run in runs:
            if (run / "instances.csv").is_file():
                written += plot_instances(run, out)
            if (run / "timeline.json").is_file():
                written += plot_timeline(run, out)
    return written
