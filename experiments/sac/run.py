"""SAC (arXiv 2606.19746) on its published testbed: Fig 10 and Fig 11 from configs/papers/sac/.

Usage: python experiments/sac/run.py [--quick] [--paper-count]
Writes experiments/sac/results/paper_vs_simulated.csv (figure, system, condition, metric, paper, simulated) and
fig10_detail.csv (per system: TTFT breakdown, hot-buffer hit rate, KV fetched per request per decode step, where
a decode step's time goes, bytes moved by path). The older rack-scale study is rack_whatif.py.

The measured round: SAC runs a populate round at concurrency 8 and measures a cache-hit round at concurrency 64.
When the schema accepts ``workload.rounds`` (checked by loading a config with it), every point runs both rounds
and reports the last; otherwise it measures a COLD round (every prompt prefilled from scratch) and says so in
the CSV's condition column (``cold``).

Request counts (not the paper's; stated so): SAC's 512 requests of 16K-128K tokens hold ~2.65 TB of BF16 latent KV,
more than its 2 TB pool, so with an LRU radix cache and the same order in both rounds round 2 finds every prompt
evicted (a cold round again). The paper calls round 2 a cache-hit round, so Fig 10's main rows use 256 requests
(~1.33 TB, all pooled); ``--paper-count`` adds rows with ``n=512``, the paper's count, for SAC and the RDMA
baseline, which show the thrashing (about 3 more minutes). The Fig 11 sweep uses 64 requests per round per point (run time: under 5 minutes on 2 cores).
"""

from __future__ import annotations

import csv
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RIG = ROOT / "configs" / "papers" / "sac"
OUT = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(ROOT))

from simcxl.config.loader import ConfigError, load_scenario  # noqa: E402
from simcxl.metrics.request_table import RequestTable  # noqa: E402
from simcxl.simulate import _outcome, prepare  # noqa: E402

# The sparse connectors' counters (simcxl/kvcache/sparse_decode.py) cover the whole run; with rounds we take
# them at the end of round 1 too and report round 2's share (the summary's own latencies are round 2's already).
SPARSE_COUNTERS = ("selected_entries", "missed_entries", "request_steps", "fetch_step_tokens", "step_compute_s",
                   "step_fetch_s", "step_s")

CONTEXTS = {"32K": 32768, "64K": 65536, "128K": 131072}
FIG10_SYSTEMS = ["sac", "rdma", "local_dram", "hbm"]
FIG11_SYSTEMS = ["sac", "rdma", "local_dram"]
FIG11_CONCURRENCY = [8, 32, 64]
FIG10_REQUESTS = 256   # see below: the largest power of two whose KV the 2 TB pool holds, so round 2 is a cache-hit round
PAPER_REQUESTS = 512   # SAC: 512 requests; their BF16 latent KV (~2.65 TB at a 73.7K-token mean) exceeds the 2 TB pool
FIG11_REQUESTS = 64    # ours: run time (see docstring)
PAPER_COUNT_SYSTEMS = ["sac", "rdma"]  # the 512-request rows (run time: two systems)
POPULATE_CONCURRENCY = 8  # SAC: round 1 at concurrency 8
# The inputs: SAC stretches ShareGPT conversations to 16K-128K tokens without saying how (papers_setup.md). Our
# choice: input lengths uniform over [16K, the context point] (ShareGPT's own lengths, hundreds of tokens, carry
# no information at these sizes), a fixed 1K output; each context point caps the inputs at 32K / 64K / 128K.
MIN_INPUT = 16384
# Fig 10 (SAC vs the RDMA baseline, round 2, 128K, concurrency 64), papers_setup.md's transcription:
PAPER_RATIO = {"output_tok_s": 2.1, "ttft_mean_s": 9.7, "tbt_mean_s": 1.8}  # SAC better by
PAPER_SAC_OUTPUT_TOK_S = 1800.0  # "SAC about 1,800 output tok/s"


def rounds_supported() -> bool:
    try:
        load_scenario(RIG / "sac.yaml", ["workload.rounds=[{concurrency: 8}, {concurrency: 64}]"])
        return True
    except ConfigError:
        return False


def overrides(context: int, concurrency: int, requests: int, rounds: bool) -> list[str]:
    sets = [f"workload.input_tokens={{dist: uniform, min: {MIN_INPUT}, max: {context}}}", f"workload.num_requests={requests}",
            f"workload.concurrency={concurrency}"]
    if rounds:
        sets.append(f"workload.rounds=[{{concurrency: {POPULATE_CONCURRENCY}}}, {{concurrency: {concurrency}}}]")
    return sets


def run_point(args: tuple) -> dict:
    system, context, concurrency, requests, rounds = args
    cluster, workload = prepare(load_scenario(RIG / f"{system}.yaml", overrides(context, concurrency, requests,
                                                                               rounds)), None)
    table, kvm, snap = RequestTable(cluster, None), cluster.kv_manager, {}

    def progress(done: int) -> None:
        if rounds and done == requests and not snap:  # round 1 has finished; round 2 starts now
            snap.update({f: getattr(kvm, f, 0.0) for f in SPARSE_COUNTERS}, bytes_moved=dict(kvm.bytes_moved))
    cluster.run(workload, progress, table.block_recorded)
    outcome = _outcome(cluster, workload, table, time.perf_counter())
    s = outcome.summary
    kv = dict(s["kv"])
    if snap and hasattr(kvm, "missed_entries"):
        d = {f: getattr(kvm, f) - snap[f] for f in SPARSE_COUNTERS}
        kv["hot_buffer_hit_rate"] = 1 - d["missed_entries"] / d["selected_entries"] if d["selected_entries"] else 0.0
        kv["fetched_bytes_per_decode_step"] = (d["missed_entries"] * kvm.entry_bytes / d["request_steps"]
                                               if d["request_steps"] else 0.0)
        tokens = d["fetch_step_tokens"] or 1
        kv["fetching_step_s"] = {"compute": d["step_compute_s"] / tokens, "fetch": d["step_fetch_s"] / tokens,
                                 "step": d["step_s"] / tokens}
    if snap:
        kv["bytes_moved"] = {k: v - snap["bytes_moved"].get(k, 0.0) for k, v in kvm.bytes_moved.items()}
    # The summary's TBT covers every token interval of the run, round 1's included (on one server round 1's
    # cold prefill passes pause the decodes for seconds); Fig 10 is round 2's: the measured rows' token intervals.
    df = outcome.report.requests
    measured = df.iloc[workload.round_requests:] if rounds else df
    gaps = (measured["output_tokens"] - 1).clip(lower=0)
    tbt = float((measured["tbt_mean_s"] * gaps).sum() / gaps.sum())
    worker = cluster.aggregated[0] if cluster.aggregated else None
    return {
        "system": system, "context": context, "concurrency": concurrency, "requests": requests,
        "output_tok_s": s["throughput"]["output_tokens_per_s"], "ttft_mean_s": s["ttft_s"]["mean"],
        "tbt_mean_s": tbt, "completed": s["requests"]["completed"],
        "ttft_breakdown_s": s["ttft_breakdown_s"], "hot_buffer_hit_rate": kv.get("hot_buffer_hit_rate"),
        "fetched_bytes_per_decode_step": kv.get("fetched_bytes_per_decode_step"),
        "fetching_step_s": kv.get("fetching_step_s"), "bytes_moved": kv.get("bytes_moved"),
        "prefix_hit_rate_tokens": kv.get("prefix_hit_rate_tokens"), "preemptions": s.get("preemptions"),
        "decode_batch_mean": s.get("decode_batch_mean"),
        "preemptions_aggregated": worker.preemptions if worker else None,
    }


def main(quick: bool = False, paper_count: bool = False) -> list[dict]:
    start = time.perf_counter()
    rounds = rounds_supported()
    round_tag = "round2" if rounds else "cold"
    fig10_n, fig11_n = (8, 8) if quick else (FIG10_REQUESTS, FIG11_REQUESTS)
    fig10 = [(s, CONTEXTS["128K"], 64, fig10_n, rounds) for s in FIG10_SYSTEMS]
    if paper_count:
        fig10 += [(s, CONTEXTS["128K"], 64, 32 if quick else PAPER_REQUESTS, rounds) for s in PAPER_COUNT_SYSTEMS]
    conc = [8, 64] if quick else FIG11_CONCURRENCY
    ctxs = {"32K": CONTEXTS["32K"]} if quick else CONTEXTS
    fig11 = [(s, c, k, fig11_n, rounds) for s in FIG11_SYSTEMS for c in ctxs.values() for k in conc]
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run_point, fig10 + fig11))
    r10, r11 = results[:len(fig10)], results[len(fig10):]
    r10, r512 = r10[:len(FIG10_SYSTEMS)], r10[len(FIG10_SYSTEMS):]
    rows = []
    by = {r["system"]: r for r in r10}
    cond = f"ctx=128K,conc=64,{round_tag}"
    for r in r512:
        for metric in ("output_tok_s", "ttft_mean_s", "tbt_mean_s", "prefix_hit_rate_tokens"):
            rows.append(("Fig 10", r["system"], f"{cond},n={r['requests']}", metric,
                         PAPER_SAC_OUTPUT_TOK_S if (metric, r["system"]) == ("output_tok_s", "sac") else None, r[metric]))
    for r in r10:
        for metric in ("output_tok_s", "ttft_mean_s", "tbt_mean_s"):
            paper = None
            if metric == "output_tok_s" and r["system"] == "sac":
                paper = PAPER_SAC_OUTPUT_TOK_S
            elif metric == "output_tok_s" and r["system"] == "rdma":
                paper = PAPER_SAC_OUTPUT_TOK_S / PAPER_RATIO["output_tok_s"]  # implied by the ratio
            rows.append(("Fig 10", r["system"], cond, metric, paper, r[metric]))
    sac, rdma = by["sac"], by["rdma"]
    rows += [("Fig 10", "sac_vs_rdma", cond, "output_tok_s_ratio", PAPER_RATIO["output_tok_s"],
              sac["output_tok_s"] / rdma["output_tok_s"]),
             ("Fig 10", "sac_vs_rdma", cond, "ttft_lower_x", PAPER_RATIO["ttft_mean_s"],
              rdma["ttft_mean_s"] / sac["ttft_mean_s"]),
             ("Fig 10", "sac_vs_rdma", cond, "tbt_lower_x", PAPER_RATIO["tbt_mean_s"],
              rdma["tbt_mean_s"] / sac["tbt_mean_s"])]
    name = {v: k for k, v in CONTEXTS.items()}
    for system in FIG11_SYSTEMS:
        for ctx in ctxs.values():
            pts = [r for r in r11 if r["system"] == system and r["context"] == ctx]
            rows.append(("Fig 11", system, f"ctx={name[ctx]},peak,{round_tag}", "output_tok_s", None,
                         max(p["output_tok_s"] for p in pts)))
            rows += [("Fig 11", system, f"ctx={name[ctx]},conc={p['concurrency']},{round_tag}", "output_tok_s",
                      None, p["output_tok_s"]) for p in pts]
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "paper_vs_simulated.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["figure", "system", "condition", "metric", "paper", "simulated"])
        for fig, system, c, metric, paper, sim in rows:
            w.writerow([fig, system, c, metric, "" if paper is None else f"{paper:.4g}", f"{sim:.4g}"])
    with open(OUT / "fig10_detail.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["system", "field", "value"])
        for r in r10 + r512:
            for k, v in r.items():
                if isinstance(v, dict):
                    for kk, vv in v.items():
                        w.writerow([f"{r['system']},n={r['requests']}", f"{k}.{kk}", "" if vv is None else f"{vv:.6g}"])
                elif k != "system":
                    w.writerow([f"{r['system']},n={r['requests']}", k, v if not isinstance(v, float) else f"{v:.6g}"])
    print(f"rounds: {'populate at 8, measured round 2' if rounds else 'NOT supported: cold round measured'}")
    for fig, system, c, metric, paper, sim in rows:
        if fig == "Fig 10":
            print(f"{fig:7s} {system:12s} {c:28s} {metric:20s} paper {'' if paper is None else f'{paper:8.3g}':>8s}  "
                  f"simulated {sim:8.3g}")
    print(f"{time.perf_counter() - start:.0f} s wall; results in {OUT}")
    return rows


if __name__ == "__main__":
    main(quick="--quick" in sys.argv, paper_count="--paper-count" in sys.argv)
