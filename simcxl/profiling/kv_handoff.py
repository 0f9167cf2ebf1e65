"""A prefill-to-decode KV hand-off between two GPUs of one host: ``python -m simcxl.profiling.kv_handoff -o DIR``
(a machine with two or more CUDA GPUs joined by NVLink).

The prefill GPU holds a request's KV in paged blocks, one tensor per layer laid out as vLLM's
[2 (K, V), blocks, block tokens, KV heads, head dim]; the decode GPU has free blocks at other indices.
Three ways to move it, as connectors do:
- ``per_block``: one peer copy per (layer, K or V, block), the cudaMemcpyPeer-per-descriptor path;
- ``gathered``: gather the request's blocks of every layer into one contiguous buffer, one peer copy,
  scatter on the decode GPU;
- ``nccl_per_layer``: NCCL send/recv of each layer's gathered blocks between two processes.
Rows: method, model, tokens, layers, blocks, copies, bytes, seconds (median), GB/s. The per-copy and
per-byte costs check the fabric model's per-descriptor and bandwidth terms on a path we can measure.
Writes DIR/kv_handoff.csv and DIR/kv_handoff_info.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

BLOCK_TOKENS = 16
# (name, layers, KV heads per GPU, head dim): Llama-3.1-8B (TP 1) and Llama-3.1-70B (TP 4 shard)
MODELS = (("llama-3.1-8b", 32, 8, 128), ("llama-3.1-70b-tp4", 80, 2, 128))
TOKENS = (1024, 4096, 16384)
REPS = 5
COLUMNS = "method,model,tokens,layers,blocks,copies,bytes,seconds,gbps"


def _pools(torch, device, layers, kv_heads, head_dim, blocks):
    return [torch.randn(2, blocks, BLOCK_TOKENS, kv_heads, head_dim, device=device, dtype=torch.bfloat16)
            for _ in range(layers)]


def _median_seconds(torch, fn) -> float:
    fn()
    torch.cuda.synchronize(0)
    torch.cuda.synchronize(1)
    samples = []
    for _ in range(REPS):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize(0)
        torch.cuda.synchronize(1)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def copy_rows(torch) -> list[str]:
    """per_block and gathered, one process driving both GPUs (wall time: launch costs count, as in a connector)."""
    rows = []
    for name, layers, kv_heads, head_dim in MODELS:
        for tokens in TOKENS:
            blocks = tokens // BLOCK_TOKENS
            src = _pools(torch, "cuda:0", layers, kv_heads, head_dim, 2 * blocks)
            dst = _pools(torch, "cuda:1", layers, kv_heads, head_dim, 2 * blocks)
            src_ids = torch.arange(0, 2 * blocks, 2, device="cuda:0")  # the request's blocks, not adjacent
            dst_ids = torch.arange(1, 2 * blocks, 2, device="cuda:1")
            nbytes = layers * 2 * blocks * BLOCK_TOKENS * kv_heads * head_dim * 2

            def per_block():
                for s, d in zip(src, dst):
                    for kv in range(2):
                        for b in range(blocks):
                            d[kv, 2 * b + 1].copy_(s[kv, 2 * b], non_blocking=True)

            def gathered():
                staged = torch.stack([s[:, src_ids] for s in src])
                landed = staged.to("cuda:1", non_blocking=True)
                for layer, d in enumerate(dst):
                    d[:, dst_ids] = landed[layer]

            for method, fn, copies in (("per_block", per_block, layers * 2 * blocks), ("gathered", gathered, 1)):
                if method == "per_block" and copies > 200_000:
                    continue
                seconds = _median_seconds(torch, fn)
                rows.append(f"{method},{name},{tokens},{layers},{blocks},{copies},{nbytes},{seconds!r},"
                            f"{nbytes / seconds / 1e9!r}")
                print(rows[-1], flush=True)
            del src, dst
            torch.cuda.empty_cache()
    return rows


def _nccl_worker(rank: int, port: int, out: str) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=2, device_id=torch.device("cuda", rank))
    rows = []
    for name, layers, kv_heads, head_dim in MODELS:
        for tokens in TOKENS:
            blocks = tokens // BLOCK_TOKENS
            buffers = [torch.empty(2, blocks, BLOCK_TOKENS, kv_heads, head_dim, device="cuda", dtype=torch.bfloat16)
                       for _ in range(layers)]
            nbytes = sum(b.numel() * 2 for b in buffers)

            def hand_off():
                ops = [dist.P2POp(dist.isend if rank == 0 else dist.irecv, b, 1 - rank) for b in buffers]
                for work in dist.batch_isend_irecv(ops):
                    work.wait()
                torch.cuda.synchronize()

            hand_off()
            samples = []
            for _ in range(REPS):
                dist.barrier()
                start = time.perf_counter()
                hand_off()
                samples.append(time.perf_counter() - start)
            seconds = statistics.median(samples)
            rows.append(f"nccl_per_layer,{name},{tokens},{layers},{blocks},{layers},{nbytes},{seconds!r},"
                        f"{nbytes / seconds / 1e9!r}")
            del buffers
    if rank == 0:
        Path(out).write_text("\n".join(rows) + "\n")
    dist.barrier()
    dist.destroy_process_group()


def measure(out_dir: Path) -> dict:
    import torch
    import torch.multiprocessing as mp

    from simcxl.profiling import record

    if torch.cuda.device_count() < 2:
        raise SystemExit(f"a GPU-to-GPU hand-off needs two GPUs; this machine has {torch.cuda.device_count()}")
    out_dir.mkdir(parents=True, exist_ok=True)
    peer = torch.cuda.can_device_access_peer(0, 1)
    rows = [COLUMNS] + copy_rows(torch)
    nccl_rows = out_dir / "kv_handoff_nccl.part"
    mp.spawn(_nccl_worker, args=(29533, str(nccl_rows)), nprocs=2, join=True)
    rows += nccl_rows.read_text().splitlines()
    nccl_rows.unlink()
    return record.write(out_dir, "kv_handoff", rows, block_tokens=BLOCK_TOKENS, peer_access=peer, reps=REPS,
                        nccl=".".join(map(str, torch.cuda.nccl.version())))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    print(json.dumps(measure(parser.parse_args().output)))
