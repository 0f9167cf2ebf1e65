"""From measured kernels to a calibrated GPU profile, and the end-to-end validation table.

Torch-free: it reads the CSVs that ``simcxl.profiling.measure`` wrote. Each efficiency is the median
achieved fraction of the datasheet peak over the shapes where that roofline term dominates:
- compute_efficiency: GEMMs with >= 1024 tokens (compute-bound);
- memory_efficiency: GEMMs with <= 16 tokens over >= 100 MB of weights (weight-streaming, as decode);
- attention_efficiency: causal prefill attention of >= 4096 tokens;
- attention_memory_efficiency: decode attention reading >= 256 MB of KV;
- elementwise_efficiency: the unfused elementwise ops of a layer at >= 1024 tokens;
- layer_overhead: what one token's layer costs beyond those rates: each GEMM's time at one token minus
  its weight-streaming time, plus decode attention's and the elementwise ops' time at one token;
- fp8_compute_efficiency: FP8 GEMMs with >= 1024 tokens (``simcxl.profiling.fp8_gemms``);
- fused_elementwise_efficiency and fused_layer_overhead: the same two for whole layers compiled by
  torch.compile and replayed from a CUDA graph (``simcxl.profiling.compiled_layer``): what they take
  beyond the GEMM and attention rooflines above.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

from simcxl.config.schema import GPUSpec, ModelSpec

PER_LAYER_GEMMS = ((6144, 4096), (4096, 4096), (28672, 4096), (4096, 14336))  # QKV, O, gate+up, down


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return [{k: (v if k in ("kind", "phase", "mode", "layer") else float(v or "nan")) for k, v in row.items()}
                for row in csv.DictReader(handle)]


def fit_efficiencies(rows: list[dict], peak_flops: float, hbm_bandwidth: float) -> dict[str, float]:
    def median(kind, value, keep):
        picked = [value(r) for r in rows if r["kind"] == kind and keep(r)]
        if not picked:
            raise ValueError(f"no '{kind}' measurements to fit from")
        return statistics.median(picked)

    rate = lambda r: r["flops"] / r["seconds"]  # noqa: E731
    bandwidth = lambda r: r["bytes"] / r["seconds"]  # noqa: E731
    fit = {
        "compute_efficiency": median("gemm", rate, lambda r: r["m"] >= 1024) / peak_flops,
        "memory_efficiency": median("gemm", bandwidth, lambda r: r["m"] <= 16 and r["n"] * r["k"] * 2 >= 100e6)
        / hbm_bandwidth,
        "attention_efficiency": median("attention_prefill", rate, lambda r: r["context"] >= 4096) / peak_flops,
        "attention_memory_efficiency": median("attention_decode", bandwidth, lambda r: r["bytes"] >= 256e6)
        / hbm_bandwidth,
        "elementwise_efficiency": median("elementwise_layer", bandwidth, lambda r: r["m"] >= 1024) / hbm_bandwidth,
    }
    elementwise = next(r["seconds"] for r in rows if r["kind"] == "elementwise_layer" and r["m"] == 1)
    fit["layer_overhead"] = _ramp_up(rows, fit, hbm_bandwidth) + elementwise
    return fit


def _ramp_up(rows: list[dict], fit: dict[str, float], hbm_bandwidth: float) -> float:
    """One token's layer of GEMMs and decode attention beyond their streaming time at the fitted rates."""
    weight_rate = fit["memory_efficiency"] * hbm_bandwidth
    gemm_fixed = sum(
        next(r["seconds"] for r in rows if r["kind"] == "gemm" and r["m"] == 1 and (r["n"], r["k"]) == shape)
        - shape[0] * shape[1] * 2 / weight_rate for shape in PER_LAYER_GEMMS)
    attention = min((r for r in rows if r["kind"] == "attention_decode"), key=lambda r: r["bytes"])
    attention_fixed = attention["seconds"] - attention["bytes"] / (fit["attention_memory_efficiency"] * hbm_bandwidth)
    return max(0.0, gemm_fixed) + max(0.0, attention_fixed)


def fit_fp8(rows: list[dict], fp8_peak_flops: float) -> float:
    """FP8 compute efficiency: the median FP8 GEMM rate with >= 1024 tokens over the FP8 peak."""
    return statistics.median(r["flops"] / r["seconds"] for r in rows if r["kind"] == "fp8" and r["m"] >= 1024) \
        / fp8_peak_flops


def fit_fused(compiled_rows: list[dict], gpu: GPUSpec) -> dict[str, float]:
    """The fused figures, from whole layers compiled and replayed from CUDA graphs as an engine runs them
    (``simcxl.profiling.compiled_layer``): what each measured layer takes beyond the profile's GEMM and
    attention rooflines is the fused ops and the per-layer fixed cost. Decode layers (few tokens) give the
    fixed cost; prefill layers (>= 1024 tokens) then give the fused ops' effective bandwidth over their
    nominal traffic."""
    from simcxl.profiling import compiled_layer as shape

    compute = _one_layer(gpu, fused=False)

    def beyond_rooflines(row: dict) -> tuple[float, float]:
        """(seconds the layer took beyond its GEMMs and attention, tokens it carried)"""
        tokens = int(row["m"] if row["phase"] == "prefill" else row["batch"])
        rooflines = _predicted_layer(compute, row) - compute._fixed_and_elementwise(tokens)
        return row["seconds"] - rooflines, tokens

    layers = [r for r in compiled_rows if r["kind"] == "layer" and r["mode"] == "compiled"]
    decode = [beyond_rooflines(r) for r in layers if r["phase"] == "decode"]
    prefill = [beyond_rooflines(r) for r in layers if r["phase"] == "prefill" and r["m"] >= 1024]
    overhead = statistics.median(rest for rest, _ in decode)
    efficiency = statistics.median(shape.nominal_elementwise_bytes(tokens) / (rest - overhead)
                                   for rest, tokens in prefill) / gpu.hbm_bandwidth
    overhead = statistics.median(rest - shape.nominal_elementwise_bytes(tokens) / (efficiency * gpu.hbm_bandwidth)
                                 for rest, tokens in decode)
    return {"fused_elementwise_efficiency": efficiency, "fused_layer_overhead": overhead}


def _one_layer(gpu: GPUSpec, fused: bool):
    """The compute model of the measured layer: one Llama-3.1-70B layer, TP 4, FP8, no LM head."""
    from simcxl.hardware.gpu import GPUCompute
    from simcxl.hardware.model import LLM
    from simcxl.profiling import compiled_layer as shape

    layer = ModelSpec(name="one Llama-3.1-70B layer", layers=1, hidden=shape.HIDDEN, heads=shape.HEADS,
                      kv_heads=shape.KV_HEADS, head_dim=shape.HEAD_DIM, intermediate=shape.INTERMEDIATE,
                      vocab=1, dtype="fp8", kv_dtype="bf16")
    return GPUCompute(gpu, LLM(layer), shape.TP, fused=fused)


def _predicted_layer(compute, row: dict) -> float:
    """The model's time for a measured layer row, without the all-reduces (priced from their own table)."""
    m, batch, context = int(row["m"]), int(row["batch"]), int(row["context"])
    if row["phase"] == "prefill":
        return compute.prefill_time([m]) - compute.allreduce_time(m)
    return compute.decode_step_time(batch, batch * context) - compute.allreduce_time(batch)


def layer_check_rows(gpu: GPUSpec, compiled_rows: list[dict]) -> list[dict]:
    """Predicted vs measured time of every measured layer, eager rows with the eager figures and compiled
    rows with the fused ones (which were fitted from them: a check of the fit's residuals)."""
    models = {"eager": _one_layer(gpu, fused=False), "compiled": _one_layer(gpu, fused=True)}
    rows = []
    for row in compiled_rows:
        if row["kind"] != "layer":
            continue
        predicted = _predicted_layer(models[row["mode"]], row)
        rows.append(dict(mode=row["mode"], phase=row["phase"], batch=int(row["batch"]),
                         context=int(row["m"] if row["phase"] == "prefill" else row["context"]),
                         measured_s=row["seconds"], predicted_s=predicted, error=predicted / row["seconds"] - 1))
    return rows


def profile_yaml(base: GPUSpec, fit: dict[str, float], info: dict, csv_path: str) -> str:
    """A GPU profile: the datasheet numbers of ``base`` and the efficiencies measured into ``csv_path``."""
    source = f"measured: {csv_path} (simcxl profile-gpu on {info['gpu']}, torch {info['torch']}, CUDA " \
             f"{info['cuda']}, {info['date']})"
    return f"""# {base.name}: datasheet peaks, efficiencies calibrated on a real GPU by `simcxl profile-gpu`.
gpu:
  name: {base.name}
  peak_flops: {base.peak_flops / 1e12:g} TFLOP/s        # bf16 dense tensor core peak; NVIDIA datasheet
  hbm_bandwidth: {base.hbm_bandwidth / 1e12:g} TB/s       # NVIDIA datasheet
  hbm_capacity: {base.hbm_capacity / 1e9:g} GB            # NVIDIA datasheet
  memory_utilization: {base.memory_utilization}        # share of HBM the engine may use (vLLM's gpu_memory_utilization default)
  compute_efficiency: {fit['compute_efficiency']:.3f}        # median of bf16 GEMMs with >= 1024 tokens; {source}
  attention_efficiency: {fit['attention_efficiency']:.3f}      # median of causal SDPA prefill >= 4096 tokens; same measurement
  memory_efficiency: {fit['memory_efficiency']:.3f}         # median of weight-streaming GEMMs (<= 16 tokens, >= 100 MB); same measurement
  attention_memory_efficiency: {fit['attention_memory_efficiency']:.3f}  # median of decode SDPA reading >= 256 MB of KV; same measurement
  elementwise_efficiency: {fit['elementwise_efficiency']:.3f}    # median of a layer's unfused norms/RoPE/SwiGLU/residuals at >= 1024 tokens; same measurement
  layer_overhead: {fit['layer_overhead'] * 1e6:.1f} us          # one token's layer beyond those rates (GEMM ramp-up, attention, small ops); same measurement
  nvlink_bandwidth: {base.nvlink_bandwidth / 1e9:g} GB/s     # NVIDIA datasheet (not measured: one GPU)
  nvlink_latency: {base.nvlink_latency * 1e6:g} us           # estimate: NCCL all-reduce latency floor within one HGX board (not measured)
{_kept_from_base(base)}  calibrated: true
"""


def _kept_from_base(base: GPUSpec) -> str:
    """The base profile's FP8 rates, fused-op figures and graph launch floor, all-reduce and expert-GEMM tables: other measurements than this
    fit's, kept as they are."""
    lines = []
    if base.fp8_peak_flops is not None:
        lines += [f"  fp8_peak_flops: {base.fp8_peak_flops / 1e12:g} TFLOP/s   # kept from the base profile (see its source)",
                  f"  fp8_compute_efficiency: {base.fp8_compute_efficiency!r}   # kept from the base profile "
                  f"(simcxl.profiling.fp8_gemms)"]
    if base.fused_layer_overhead is not None:
        lines += [f"  fused_elementwise_efficiency: {base.fused_elementwise_efficiency!r}   # kept from the base "
                  f"profile (simcxl.profiling.compiled_layer)",
                  f"  fused_layer_overhead: {base.fused_layer_overhead!r} s   # kept from the base profile"]
    if base.graph_kernel_floor is not None:
        lines.append(f"  graph_kernel_floor: {base.graph_kernel_floor!r} s   # kept from the base profile "
                     f"(simcxl.profiling.moe_kernels, launch.csv)")
    if base.allreduce:
        lines.append("  allreduce:   # kept from the base profile (see its sources)")
        lines += [f"    - {{tensor_parallel: {p.tensor_parallel}, bytes: {p.bytes!r} B, time: {p.time!r} s}}"
                  for p in base.allreduce]
    if base.moe_gemm:
        lines.append("  moe_gemm:   # kept from the base profile (simcxl.profiling.moe_kernels, triton_moe.csv)")
        lines += [f"    - {{tokens: {p.tokens}, efficiency: {p.efficiency!r}}}" for p in base.moe_gemm]
    return "".join(line + "\n" for line in lines)


def validation_rows(gpu: GPUSpec, model_spec, measured: list[dict]) -> list[dict]:
    """Predicted vs measured full-model latency for every measured point (error = predicted / measured - 1)."""
    from simcxl.hardware.gpu import GPUCompute
    from simcxl.hardware.model import LLM

    compute = GPUCompute(gpu, LLM(model_spec))
    rows = []
    for m in measured:
        batch, context = int(m["batch"]), int(m["context"])
        predicted = (compute.prefill_time([context] * batch) if m["phase"] == "prefill"
                     else compute.decode_step_time(batch, batch * context))
        rows.append(dict(phase=m["phase"], batch=batch, context=context, measured_s=m["seconds"],
                         predicted_s=predicted, error=predicted / m["seconds"] - 1))
    return rows


def validation_markdown(rows: list[dict], title: str) -> str:
    errors = [abs(r["error"]) for r in rows]
    lines = [f"### {title}", "", "| phase | batch | context | measured (ms) | predicted (ms) | error |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['phase']} | {r['batch']} | {r['context']} | {r['measured_s'] * 1e3:.2f} | "
              f"{r['predicted_s'] * 1e3:.2f} | {r['error']:+.1%} |" for r in rows]
    lines += ["", f"Median absolute error {statistics.median(errors):.1%}, max {max(errors):.1%} "
                  f"over {len(rows)} points.", ""]
    return "\n".join(lines)


def read_info(directory: Path) -> dict:
    return json.loads((directory / "info.json").read_text())
