"""The summary printed at the end of ``simcxl run``: the numbers a researcher looks at first."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:,.2f}"


def latency_table(summary: dict) -> Table:
    table = Table(title=f"simcxl: {summary['scenario']}", header_style="bold")
    table.add_column("latency (ms)")
    for column in ("mean", "p50", "p90", "p99"):
        table.add_column(column, justify="right")
    for key, label in (("ttft_s", "TTFT"), ("tbt_s", "TBT"), ("e2e_s", "E2E")):
        stats = summary[key]
        table.add_row(label, *(_ms(stats.get(c)) for c in ("mean", "p50", "p90", "p99")))
    table.add_section()
    for part, seconds in summary["ttft_breakdown_s"].items():
        table.add_row(f"  TTFT: {part}", _ms(seconds), "", "", "")
    return table


def facts_table(summary: dict, wall_s: float | None = None) -> Table:
    table = Table(show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    req, thr, util, sim = summary["requests"], summary["throughput"], summary["utilization"], summary["sim"]
    table.add_row("requests completed / arrived", f"{req['completed']:,} / {req['arrived']:,}")
    table.add_row("throughput", f"{thr['output_tokens_per_s']:,.0f} output tok/s, {thr['requests_per_s']:,.2f} req/s")
    for kind, nbytes in summary["kv"]["bytes_moved"].items():
        table.add_row(f"KV moved: {kind}", f"{nbytes / 1e9:,.1f} GB")
    if "prefix_hit_rate" in summary["kv"]:
        kv = summary["kv"]
        table.add_row("prefix hit rate (blocks, tokens)", f"{kv['prefix_hit_rate']:.1%}, "
                      f"{kv['prefix_hit_rate_tokens']:.1%} (ideal {kv['ideal_prefix_hit_rate']:.1%})")
        table.add_row("prefix blocks: evicted, missed in flight",
                      f"{kv['evicted_blocks']:,}, {kv['inflight_miss_blocks']:,}")
    if "hot_buffer_hit_rate" in summary["kv"]:
        kv = summary["kv"]
        table.add_row(f"hot-buffer hit rate ({kv['hot_buffer_tokens']:,} tokens/request)",
                      f"{kv['hot_buffer_hit_rate']:.1%}")
        table.add_row("KV fetched per decode step (per request)",
                      f"{kv['fetched_bytes_per_decode_step'] / 1e6:,.2f} MB")
    for role, busy in util["gpu"].items():
        table.add_row(f"GPU busy: {role}", f"{busy:.1%}")
    for kind, stats in util["link"].items():
        if stats["max"] > 0:
            table.add_row(f"link utilization: {kind}", f"mean {stats['mean']:.1%}, max {stats['max']:.1%}")
    wall = f" in {wall_s:.1f} s wall" if wall_s is not None else ""
    table.add_row("simulated", f"{sim['simulated_s']:,.1f} s, {sim['events']:,} events{wall}")
    return table


def print_summary(summary: dict, wall_s: float | None = None, console: Console | None = None) -> None:
    console = console or Console()
    console.print(latency_table(summary))
    console.print(facts_table(summary, wall_s))
