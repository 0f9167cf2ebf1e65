"""NCCL all-reduce over NVLink, one process per GPU: ``python -m simcxl.profiling.allreduce -o DIR``
(a machine with two or more CUDA GPUs; every GPU of it takes part, or ``--gpus N``).

Tensor-parallel inference all-reduces the activations twice per layer: a few KiB per decode step, up
to hundreds of MiB per prefill chunk. Each row times one bf16 all-reduce of ``bytes`` (the median of
repeated calls, CUDA events on rank 0 after a barrier), eagerly and replayed from a CUDA graph (as
vLLM and SGLang run decode), and gives nccl-tests' bus bandwidth: 2 (T-1)/T x bytes / time.
Writes DIR/allreduce.csv and DIR/allreduce_info.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

SIZES = [2 ** p for p in range(10, 29, 2)]  # 1 KiB .. 256 MiB
COLUMNS = "tensor_parallel,mode,bytes,seconds,bus_bandwidth"


def _worker(rank: int, world: int, port: int, out: str) -> None:
    import torch
    import torch.distributed as dist

    from simcxl.profiling import record
    from simcxl.profiling.kernels import cuda_time

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=world, device_id=torch.device("cuda", rank))
    rows = [COLUMNS]
    for nbytes in SIZES:
        x = torch.ones(nbytes // 2, device="cuda", dtype=torch.bfloat16)
        dist.all_reduce(x)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            dist.all_reduce(x)
            with torch.cuda.graph(graph, stream=stream):
                dist.all_reduce(x)
        torch.cuda.synchronize()
        for mode, fn in (("eager", lambda: dist.all_reduce(x)), ("cuda_graph", graph.replay)):
            dist.barrier()
            seconds = cuda_time(fn, reps=20, rounds=5)
            rows.append(f"{world},{mode},{nbytes},{seconds!r},{2 * (world - 1) / world * nbytes / seconds!r}")
        del graph, x
    if rank == 0:
        record.write(Path(out), "allreduce", rows, gpus=world, dtype="bf16", nccl=".".join(map(str, torch.cuda.nccl.version())))
    dist.barrier()
    dist.destroy_process_group()


def measure(out_dir: Path, gpus: int | None = None) -> dict:
    import torch
    import torch.multiprocessing as mp

    world = gpus or torch.cuda.device_count()
    if world < 2:
        raise SystemExit(f"an all-reduce needs two or more GPUs; this machine has {torch.cuda.device_count()}")
    out_dir.mkdir(parents=True, exist_ok=True)
    mp.spawn(_worker, args=(world, 29517, str(out_dir)), nprocs=world, join=True)
    return json.loads((out_dir / "allreduce_info.json").read_text())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--gpus", type=int, help="GPUs taking part (default: all)")
    args = parser.parse_args()
    print(json.dumps(measure(args.output, args.gpus)))
