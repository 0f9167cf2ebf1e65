"""The grouped expert GEMMs' efficiency table of the GPU profiles (``moe_gemm`` in configs/hardware/h100_sxm.yaml
and h200.yaml), derived from validation/moe_kernels/h100/triton_moe.csv (simcxl.profiling.moe_kernels on one
NVIDIA H100 80GB HBM3, 2026-12-08: a block-FP8 grouped GEMM in Triton after SGLang's fused_moe_kernel, DeepSeek-V3's
TP-8 expert slices, 257 experts top-9 with the shared expert fused).

For each token count, efficiency = (roofline time of w13 + roofline time of w2) / (measured w13 + w2), the roofline
of each being max(weight bytes / HBM bandwidth, FLOPs / FP8 peak) at the H100's datasheet peaks (3.35 TB/s,
1979 TFLOP/s). simcxl prices a forward's expert GEMMs as their roofline on the profile's GPU / this efficiency:
on another Hopper GPU (H200: 4.8 TB/s, same FP8 peak) a bytes-bound point thus scales by the bandwidth ratio and a
compute-bound one stays. ``python -m experiments.validation.moe_gemm_efficiency`` prints the YAML rows."""

from __future__ import annotations

import csv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CSV = ROOT / "validation/moe_kernels/h100/triton_moe.csv"
H100_HBM = 3.35e12  # NVIDIA H100 SXM datasheet
H100_FP8 = 1979e12  # NVIDIA H100 SXM datasheet, dense


def efficiencies(path: Path = CSV) -> list[tuple[int, float]]:
    by_tokens: dict[int, list[float]] = {}
    for row in csv.DictReader(path.open()):
        if row["gemm"] not in ("w13", "w2"):
            continue
        roof = max(float(row["weight_bytes"]) / H100_HBM, float(row["flops"]) / H100_FP8)
        acc = by_tokens.setdefault(int(row["tokens"]), [0.0, 0.0])
        acc[0] += roof
        acc[1] += float(row["seconds"])
    return [(t, roof / sec) for t, (roof, sec) in sorted(by_tokens.items())]


def main() -> None:
    for tokens, eff in efficiencies():
        print(f"    - {{tokens: {tokens}, efficiency: {eff:.3f}}}")


if __name__ == "__main__":
    main()
