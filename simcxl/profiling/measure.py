"""Measure a GPU for the compute model: ``python -m simcxl.profiling.measure -o DIR``.

Writes DIR/kernels.csv (microbenchmarks), DIR/validation.csv (a full Llama-3.1-8B-shaped model) and
DIR/info.json (GPU, PyTorch and CUDA versions, date). Needs only PyTorch and a CUDA GPU, so it runs
on a bare GPU machine; ``simcxl profile-gpu --from-csv DIR`` turns the CSVs into a GPU profile.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from simcxl.profiling import kernels, validate


def measure(out_dir: Path, skip_validation: bool = False) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows, info = kernels.measure_all()
    (out_dir / "kernels.csv").write_text(kernels.to_csv(rows))
    if not skip_validation:
        (out_dir / "validation.csv").write_text(validate.to_csv(validate.measure_all()))
    info["wall_s"] = round(time.perf_counter() - start, 1)
    (out_dir / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--skip-validation", action="store_true")
    args = parser.parse_args()
    print(json.dumps(measure(args.output, args.skip_validation)))


if __name__ == "__main__":
    main()
