"""End-to-end validation against a real engine: simulated vs measured mean TTFT and TPOT.

``python -m experiments.validation.run [-o DIR] [--set llama|deepseek|all] [--config CONFIG] [--measurements JSON]``

Two bundled sets (validation/inferencex/README.md): Llama-3.1-70B FP8 on vLLM, H100 TP 4 (``llama``: files
``validation.*``) and DeepSeek-V3 FP8 on SGLang, H200 TP 8 (``deepseek``: ``validation_deepseek.*``); default both.

For each measured sweep (length pair) and concurrency, runs the engine scenario as the benchmark drove
the engine: ``workload.concurrency=C``, ``workload.num_requests=10 C``, lengths uniform in
[0.8 L, L]. Prints simulated vs measured with the signed error of each point, the median |error| over
concurrency 4-32 (the acceptance range) and over all points, and writes ``validation.csv``,
``validation.md`` and ``validation.png`` to DIR (default: experiments/validation/results). Nothing is
fitted to these measurements: every parameter of the scenario comes from kernels, microbenchmarks or
cited figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from experiments.rate_sweep import write_rows  # noqa: E402
from simcxl.config.loader import load_scenario  # noqa: E402
from simcxl.metrics.plots import legend_outside, use_style  # noqa: E402
from simcxl.metrics.results import write_atomic  # noqa: E402
from simcxl.simulate import simulate  # noqa: E402

CONFIG = ROOT / "configs/engine/vllm_llama-3.1-70b-fp8_h100.yaml"
MEASUREMENTS = ROOT / "validation/inferencex/llama-3.1-70b-fp8_h100_vllm_tp4.json"
SETS = {  # name: (scenario, measurements, output stem, plot title)
    "llama": (CONFIG, MEASUREMENTS, "validation", "Llama-3.1-70B FP8, TP 4, H100, vLLM"),
    "deepseek": (ROOT / "configs/engine/sglang_deepseek-v3-fp8_h200.yaml",
                 ROOT / "validation/inferencex/deepseek-v3-fp8_h200_sglang_tp8.json", "validation_deepseek",
                 "DeepSeek-V3 FP8, TP 8, H200, SGLang"),
}
LENGTHS = {"1k1k": (1024, 1024), "1k8k": (1024, 8192), "8k1k": (8192, 1024)}
RANGE_RATIO = 0.8  # the benchmark's --random-range-ratio
ACCEPTANCE = (4, 8, 16, 32)
COLUMNS = ("label", "concurrency", "ttft_measured_s", "ttft_simulated_s", "ttft_error", "tpot_measured_s",
           "tpot_simulated_s", "tpot_error", "preemptions")


def overrides(label: str, concurrency: int) -> list[str]:
    isl, osl = LENGTHS[label]
    return [f"workload.concurrency={concurrency}", f"workload.num_requests={10 * concurrency}",
            f"workload.input_tokens={{dist: uniform, min: {int(RANGE_RATIO * isl)}, max: {isl}}}",
            f"workload.output_tokens={{dist: uniform, min: {int(RANGE_RATIO * osl)}, max: {osl}}}"]


def compare(config: Path, measurements: Path) -> list[dict]:
    rows = []
    for sweep in json.loads(measurements.read_text())["sweeps"]:
        for key, ttft_us in sweep["absolute_ttft_us"].items():
            concurrency = int(key)
            summary = simulate(load_scenario(config, overrides(sweep["label"], concurrency))).summary
            ttft, tpot = summary["ttft_s"]["mean"], summary["tpot_s"]["mean"]
            measured_ttft, measured_tpot = ttft_us / 1e6, sweep["absolute_tpot_us"][key] / 1e6
            rows.append(dict(label=sweep["label"], concurrency=concurrency, ttft_measured_s=measured_ttft,
                             ttft_simulated_s=ttft, ttft_error=ttft / measured_ttft - 1, tpot_measured_s=measured_tpot,
                             tpot_simulated_s=tpot, tpot_error=tpot / measured_tpot - 1,
                             preemptions=summary["preemptions"]["count"]))
            r = rows[-1]
            print(f"  {r['label']} C={concurrency:>2}: TTFT {ttft * 1e3:8.1f} vs {measured_ttft * 1e3:8.1f} ms "
                  f"({r['ttft_error']:+6.1%}), TPOT {tpot * 1e3:6.2f} vs {measured_tpot * 1e3:6.2f} ms "
                  f"({r['tpot_error']:+6.1%}), {r['preemptions']} preemptions", flush=True)
    return rows


def medians(rows: list[dict], concurrencies=ACCEPTANCE) -> tuple[float, float]:
    picked = [r for r in rows if r["concurrency"] in concurrencies]
    return (statistics.median(abs(r["ttft_error"]) for r in picked),
            statistics.median(abs(r["tpot_error"]) for r in picked))


def markdown(rows: list[dict], config: Path, measurements: Path = MEASUREMENTS) -> str:
    lines = [f"Scenario `{config.relative_to(ROOT)}`, measurements `{measurements.resolve().relative_to(ROOT)}`.", "",
             "| lengths | concurrency | TTFT measured (ms) | TTFT simulated (ms) | error | TPOT measured (ms) | "
             "TPOT simulated (ms) | error | preemptions |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['concurrency']} | {r['ttft_measured_s'] * 1e3:.1f} | "
                     f"{r['ttft_simulated_s'] * 1e3:.1f} | {r['ttft_error']:+.1%} | {r['tpot_measured_s'] * 1e3:.2f} | "
                     f"{r['tpot_simulated_s'] * 1e3:.2f} | {r['tpot_error']:+.1%} | {r['preemptions']} |")
    ttft, tpot = medians(rows)
    ttft_all, tpot_all = medians(rows, {r["concurrency"] for r in rows})
    lines += ["", f"Median |error|, concurrency 4-32: TTFT {ttft:.1%}, TPOT {tpot:.1%}. "
                  f"All points: TTFT {ttft_all:.1%}, TPOT {tpot_all:.1%}."]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path, title: str = SETS["llama"][3]) -> None:
    """Measured (solid) vs simulated (dashed) mean TTFT and TPOT against concurrency, one colour per length pair."""
    plt = use_style()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("ttft", "tpot")):
        for i, label in enumerate(LENGTHS):
            points = [r for r in rows if r["label"] == label]
            if not points:
                continue
            x = [r["concurrency"] for r in points]
            line, = ax.plot(x, [r[f"{metric}_measured_s"] * 1e3 for r in points], marker="o", label=f"{label} measured")
            ax.plot(x, [r[f"{metric}_simulated_s"] * 1e3 for r in points], marker="x", linestyle="--",
                    color=line.get_color(), label=f"{label} simcxl")
        ax.set_xscale("log", base=2)
        levels = sorted({int(r["concurrency"]) for r in rows})
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.set_xlabel("concurrency (closed-loop clients)")
        ax.set_ylabel(f"mean {metric.upper()} (ms)")
        ax.set_title(f"{metric.upper()}: InferenceX measured vs simcxl")
    axes[0].set_yscale("log")
    legend_outside(axes[1])
    fig.suptitle(title)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "experiments/validation/results")
    parser.add_argument("--set", choices=(*SETS, "all"), default="all", dest="which")
    parser.add_argument("--config", type=Path, help="scenario (with --measurements: one set of your own)")
    parser.add_argument("--measurements", type=Path)
    args = parser.parse_args()
    if args.config or args.measurements:
        sets = [(args.config or CONFIG, args.measurements or MEASUREMENTS, "validation", "simcxl vs measured")]
    else:
        sets = list(SETS.values()) if args.which == "all" else [SETS[args.which]]
    for config, measurements, stem, title in sets:
        print(title, flush=True)
        rows = compare(config.resolve(), measurements)
        write_rows(args.output / f"{stem}.csv", rows, COLUMNS)
        write_atomic(args.output / f"{stem}.md", markdown(rows, config.resolve(), measurements))
        plot(rows, args.output / f"{stem}.png", title)
        ttft, tpot = medians(rows)
        print(f"median |error| at concurrency 4-32: TTFT {ttft:.1%}, TPOT {tpot:.1%}; wrote {args.output}/{stem}.*")


if __name__ == "__main__":
    main()
