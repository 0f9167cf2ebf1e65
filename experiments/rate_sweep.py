"""Shared by the paper reproductions: run scenarios over a range of request rates, tabulate, plot.

Each reproduction (experiments/<paper>/run.py) names its scenarios, the rates, and the paper's headline
ratios; this module runs every (scenario, rate) point through simcxl, writes one CSV row per point,
a PNG of TTFT (mean, P99) and throughput against the offered rate, and prints the ratios of the
baseline(s) to the system at every rate next to the paper's.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simcxl.config.loader import load_scenario  # noqa: E402
from simcxl.metrics.plots import BREAKDOWN_PARTS, plot_rate_breakdown, plot_rate_sweep  # noqa: E402
from simcxl.metrics.results import write_atomic  # noqa: E402
from simcxl.simulate import simulate  # noqa: E402

COLUMNS = ("scenario", "rate", "ttft_mean_s", "ttft_p99_s", "tbt_mean_s", "e2e_mean_s", "throughput_rps",
           "output_tokens_per_s", "prefill_blocked",
           "prefix_hit_rate", "queue_s", "prefix_load_s", "prefill_s", "decode_wait_s", "kv_sync_s", "kv_transfer_s",
           "first_decode_s", "completed", "arrived")
BREAKDOWN = BREAKDOWN_PARTS  # the mean-TTFT parts each row carries (plots.py stacks them)


def run_point(config: Path, rate: float, overrides: list[str]) -> dict:
    trace = load_scenario(config).scenario.workload.type == "trace"
    rate_key = "workload.time_scale" if trace else "workload.rate"
    summary = simulate(load_scenario(config, [f"{rate_key}={rate}", *overrides])).summary
    b = summary["ttft_breakdown_s"]
    return dict(scenario=summary["scenario"], rate=rate, ttft_mean_s=summary["ttft_s"]["mean"],
                ttft_p99_s=summary["ttft_s"]["p99"], tbt_mean_s=summary["tbt_s"]["mean"],
                e2e_mean_s=summary["e2e_s"]["mean"], prefill_blocked=summary["utilization"]["gpu"]["prefill_blocked"],
                throughput_rps=summary["throughput"]["requests_per_s"],
                output_tokens_per_s=summary["throughput"]["output_tokens_per_s"],
                prefix_hit_rate=summary["kv"].get("prefix_hit_rate", 0.0), queue_s=b["queue"],
                prefix_load_s=b["prefix_load"], prefill_s=b["prefill"], decode_wait_s=b["decode_wait"],
                kv_sync_s=b["kv_sync"], kv_transfer_s=b["kv_transfer"], first_decode_s=b["first_decode"],
                completed=summary["requests"]["completed"],
                arrived=summary["requests"]["arrived"])


def sweep(configs: list[Path], rates: list[float], out_dir: Path, overrides: list[str] = ()) -> list[dict]:
    rows = []
    for config in configs:
        for rate in rates:
            rows.append(run_point(config, rate, list(overrides)))
            print(f"  {rows[-1]['scenario']:>16s} at {rate:g}: TTFT mean {rows[-1]['ttft_mean_s'] * 1e3:8.1f} ms, "
                  f"P99 {rows[-1]['ttft_p99_s'] * 1e3:8.1f} ms, {rows[-1]['throughput_rps']:.2f} req/s", flush=True)
    write_rows(out_dir / "sweep.csv", rows, COLUMNS)
    return rows


def write_rows(path: Path, rows: list[dict], columns) -> None:
    """``rows`` as a CSV with ``columns`` (fields quoted where they need it), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([r[c] for c in columns] for r in rows)
    write_atomic(path, text.getvalue())


def peak_throughput(rows: list[dict], scenario: str) -> float:
    """The highest throughput (req/s) ``scenario`` reached over a sweep."""
    return max(r["throughput_rps"] for r in rows if r["scenario"] == scenario)


def ratios(rows: list[dict], system: str, baseline: str) -> list[dict]:
    """Baseline over system at every rate: TTFT mean, TTFT P99, TBT mean, throughput (system over baseline)."""
    by = {(r["scenario"], r["rate"]): r for r in rows}
    out = []
    for rate in sorted({r["rate"] for r in rows}):
        s, b = by[(system, rate)], by[(baseline, rate)]
        out.append(dict(rate=rate, ttft_mean=b["ttft_mean_s"] / s["ttft_mean_s"],
                        ttft_p99=b["ttft_p99_s"] / s["ttft_p99_s"], tbt_mean=b["tbt_mean_s"] / s["tbt_mean_s"],
                        throughput=s["throughput_rps"] / b["throughput_rps"]))
    return out


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return [{k: (v if k == "scenario" else float(v)) for k, v in row.items()} for row in csv.DictReader(handle)]


# Per-descriptor costs with a source: the H100 per-page copies we measured (32 KiB pages, host to GPU,
# configs/hardware/calibration/h100/page_copies.csv) and NIXL's non-prepped transfer call
# (ai-dynamo/nixl#176: 0.6 s for ~15k segments, ~40 us each).
DESCRIPTOR_TIMES = {"0 s": "not modelled", "0.5 us": "", "2.8 us": "measured: cudaMemcpyAsync per page, H100",
                    "3.4 us": "measured: Tensor.copy_ per page from Python, H100", "5 us": "", "10 us": "",
                    "40 us": "NIXL transfer() without prepped lists"}


def variant_sweep(system: Path, baselines: list[Path], variants: dict[str, tuple[list[str], str]],
                  overrides: list[str], out: Path) -> list[dict]:
    """What each variant of the baselines does to the headline ratios.

    The system under study keeps its own path; each baseline is rerun with every variant's overrides
    (``variants``: label -> (overrides, source)). Writes ``out`` (CSV) and returns its rows.
    """
    reference = simulate(load_scenario(system, overrides)).summary
    rows = []
    for baseline in baselines:
        for label, (changes, source) in variants.items():
            s = simulate(load_scenario(baseline, [*overrides, *changes])).summary
            rows.append(dict(baseline=s["scenario"], variant=label, source=source,
                             ttft_mean=s["ttft_s"]["mean"] / reference["ttft_s"]["mean"],
                             ttft_p99=s["ttft_s"]["p99"] / reference["ttft_s"]["p99"],
                             throughput=reference["throughput"]["requests_per_s"] / s["throughput"]["requests_per_s"],
                             baseline_prefix_hit_rate=s["kv"].get("prefix_hit_rate", 0.0)))
            r = rows[-1]
            print(f"  {r['baseline']:>16s}, {label:>28s}: TTFT mean {r['ttft_mean']:7.2f}x  "
                  f"P99 {r['ttft_p99']:7.2f}x  throughput {r['throughput']:5.2f}x  "
                  f"(baseline hit rate {r['baseline_prefix_hit_rate']:.2f})  {source}", flush=True)
    write_rows(out, rows, list(rows[0]))
    return rows


def descriptor_sweep(system: Path, baselines: list[Path], overrides: list[str], out: Path) -> list[dict]:
    """``variant_sweep`` over a per-descriptor cost on the baselines' block-based paths (DESCRIPTOR_TIMES)."""
    variants = {f"{value} per descriptor": ([f"kv_manager.descriptor_time={value}"], source)
                for value, source in DESCRIPTOR_TIMES.items()}
    return variant_sweep(system, baselines, variants, overrides, out)


def sweep_scenarios(results: Path, names: list[str], rates: list[float], rate_label: str,
                    operating_point: float) -> tuple[list[Path], list[dict]]:
    """Sweep the bundled configs ``names`` over ``rates``: ``results``/sweep.csv, ttft_throughput.png, and
    ttft_breakdown.png at the headline's ``operating_point`` (one of ``rates``)."""
    configs = [ROOT / "configs" / f"{name}.yaml" for name in names]
    rows = sweep(configs, rates, results)
    plot_rate_sweep(rows, results / "ttft_throughput.png", rate_label)
    plot_rate_breakdown(rows, operating_point, results / "ttft_breakdown.png", rate_label)
    return configs, rows
