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
from pathlib import Path

import pandas as pd

from simcxl.errors import SimcxlError


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=110)
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


def plot_sweep(folder: Path, out: Path, x: str | None = None) -> list[Path]:
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
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    groups = table.groupby(series, sort=False) if series else [((), table)]
    for label, group in groups:
        group = group.sort_values(x)
        name = ", ".join(f"{k}={v}" for k, v in zip(series, label if isinstance(label, tuple) else (label,))) or "all"
        for ax, metric in zip(axes[:2], ("ttft_s", "tbt_s")):
            line, = ax.plot(group[x], group[f"{metric}.mean"], marker="o", label=name)
            ax.fill_between(group[x], group[f"{metric}.p50"], group[f"{metric}.p99"], alpha=0.15,
                            color=line.get_color())
        axes[2].plot(group[x], group["throughput.output_tokens_per_s"], marker="o", label=name)
    for ax, title in zip(axes, ("TTFT (s): mean, P50-P99 band", "TBT (s): mean, P50-P99 band",
                                "throughput (output tokens/s)")):
        ax.set_xlabel(x)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_yscale("log")
    fig.tight_layout()
    return _save(fig, out, "sweep")


def _load_run(folder: Path) -> tuple[str, dict, pd.DataFrame]:
    summary = _read_json(folder / "summary.json")
    for section in ("ttft_breakdown_s", "utilization"):
        if not isinstance(summary.get(section), dict):
            raise SimcxlError(f"{folder / 'summary.json'}: {section}: missing: not a summary simcxl wrote")
    requests = _read(folder / "requests.csv", pd.read_csv)
    return folder.name, summary, _columns(requests, folder / "requests.csv", "ttft_s")


def plot_runs(folders: list[Path], out: Path) -> list[Path]:
    runs = [_load_run(folder) for folder in folders]
    plt = _pyplot()
    paths = []
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, _, requests in runs:
        ttft = requests.ttft_s.dropna().sort_values()
        ax.plot(ttft, (pd.RangeIndex(1, len(ttft) + 1) / len(ttft)), label=name)
    ax.set_xscale("log")
    ax.set_xlabel("TTFT (s)")
    ax.set_ylabel("fraction of requests")
    ax.set_title("TTFT CDF")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    paths += _save(fig, out, "ttft_cdf")

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    bottoms = [0.0] * len(runs)
    for part in runs[0][1]["ttft_breakdown_s"]:
        values = [(s["ttft_breakdown_s"].get(part) or 0.0) * 1e3 for _, s, _ in runs]
        ax.bar([name for name, _, _ in runs], values, bottom=bottoms, label=part)
        bottoms = [b + v for b, v in zip(bottoms, values)]
    ax.set_ylabel("mean TTFT (ms)")
    ax.set_title("where TTFT goes")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths += _save(fig, out, "ttft_breakdown")

    fig, ax = plt.subplots(figsize=(8, 4.2))
    labels = sorted({k for _, s, _ in runs for k in s["utilization"]["gpu"]} |
                    {f"link:{k}" for _, s, _ in runs for k in s["utilization"]["link"]})
    width = 0.8 / len(runs)
    for i, (name, summary, _) in enumerate(runs):
        util = summary["utilization"]
        values = [util["gpu"].get(k, 0.0) if not k.startswith("link:") else util["link"].get(k[5:], {}).get("mean", 0.0)
                  for k in labels]
        ax.bar([j + i * width for j in range(len(labels))], values, width=width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))], labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("mean utilization")
    ax.set_title("GPU busy and link utilization")
    ax.legend()
    fig.tight_layout()
    paths += _save(fig, out, "utilization")
    return paths


def plot_timeseries(folders: list[Path], out: Path) -> list[Path]:
    plt = _pyplot()
    fig, (gpu, link) = plt.subplots(1, 2, figsize=(13, 4.2))
    for folder in folders:
        series = _columns(_read(folder / "timeseries.csv", pd.read_csv), folder / "timeseries.csv", "time_s")
        for column in series.columns[1:]:
            ax = gpu if column.startswith("gpu.") else link
            ax.plot(series.time_s, series[column], label=f"{folder.name}: {column.split('.', 1)[1]}")
    for ax, title in ((gpu, "GPU busy over time"), (link, "link utilization over time (all links of a kind)")):
        ax.set_xlabel("simulated time (s)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
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
    fig, axes = plt.subplots(2, 2, figsize=(13, 7), sharex=True)
    panels = [(axes[0][0], [("kv_percent", "")], "KV blocks in use (% of HBM KV room)", "%"),
              (axes[0][1], [("waiting", "waiting"), ("running", "running")], "requests per instance", "requests"),
              (axes[1][0], [("tokens_per_iteration", "")], "tokens per iteration", "tokens"),
              (axes[1][1], [("mfu_percent", "MFU"), ("mbu_percent", "MBU")], "MFU and MBU (% of datasheet peak)", "%")]
    for ax, columns, title, unit in panels:
        for role, rows in means.groupby("role", sort=False):
            for column, label in columns:
                ax.plot(rows.time_s, rows[column], label=f"{role} {label}".strip(), linewidth=1)
        ax.set_title(title)
        ax.set_ylabel(unit)
        if unit == "tokens":  # a prefill pass is ~100x a decode iteration
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    for ax in axes[1]:
        ax.set_xlabel("simulated time (s)")
    fig.suptitle(f"{folder.name}: per instance, mean over each role's instances")
    fig.tight_layout()
    return _save(fig, out, f"instances_{folder.name}")


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
    fig, ax = plt.subplots(figsize=(12, 0.45 * (len(tracks) + max(lanes, default=-1) + 2) + 1.2))
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
    ax.set_xlabel(f"simulated seconds after {start:.3f} s")
    handles = {label: h for h, label in zip(*ax.get_legend_handles_labels())}
    ax.legend(handles.values(), handles.keys(), loc="upper right", fontsize=8)
    ax.set_title(f"{folder.name}: timeline ({span * 1e3:.0f} ms; open timeline.json in ui.perfetto.dev for all of it)")
    fig.tight_layout()
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
