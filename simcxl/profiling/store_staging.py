"""Measure vLLM v0's host-staged Mooncake-store KV path: ``python -m simcxl.profiling.store_staging -o DIR``.

vLLM v0's ``MooncakeStoreConnector`` (vllm/distributed/kv_transfer/kv_connector/mooncake_store_connector.py)
moves a request's KV through the Mooncake store as one serialized object, on the model runner's thread:

- send (prefill, after its forward): gather the request's slots from every layer's paged K and V cache
  (``cache[slot_mapping]``), ``cat`` and ``stack`` them, ``safetensors.torch.save`` the GPU tensor (a
  pageable device-to-host copy plus serialization into a Python ``bytes``), and ``store.put`` it, which
  copies the bytes into the client's RDMA-registered buffer before the NIC writes them;
- receive (decode, before its forward): ``store.get`` returns a ``bytes`` copied out of the registered
  buffer, ``safetensors.torch.load`` parses it into a CPU tensor, ``.to(device)`` copies it to the GPU
  from pageable memory, and each layer's K and V are scattered into the paged cache.

This script times each of those steps with real PyTorch and safetensors calls on a Llama-3.1-8B-shaped
paged cache (32 layers, 8 KV heads of 128, bf16, 16-token pages, slots in shuffled pages), for several
request lengths, and the two chains' totals. The RDMA write and read themselves are not measured here
(the fabric model has them). The chain totals are what ``kv_manager.host_staging`` stands for.
Writes DIR/store_staging.csv and DIR/store_staging_info.json.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from simcxl.profiling import record

LAYERS, KV_HEADS, HEAD_DIM, PAGE = 32, 8, 128, 16
TOKENS = (1024, 4096, 16384)
REPEATS = 3
SEND = ("gather", "serialize", "put_copy")
RECEIVE = ("get_copy", "deserialize", "h2d", "scatter")


def _timed(step, results: dict, name: str):
    import torch

    torch.cuda.synchronize()
    start = time.perf_counter()
    value = step()
    torch.cuda.synchronize()
    results.setdefault(name, []).append(time.perf_counter() - start)
    return value


def _one_request(caches, slots, registered, results: dict) -> int:
    """One send and one receive of a request whose KV sits in ``slots``; returns its KV bytes."""
    import numpy as np
    import torch
    from safetensors.torch import load, save

    def gather():
        keys = torch.cat([k.view(-1, KV_HEADS, HEAD_DIM)[slots].unsqueeze(0) for k, _ in caches], dim=0)
        values = torch.cat([v.view(-1, KV_HEADS, HEAD_DIM)[slots].unsqueeze(0) for _, v in caches], dim=0)
        return torch.stack((keys, values), dim=0)

    kv = _timed(gather, results, "gather")
    nbytes = kv.numel() * kv.element_size()
    blob = _timed(lambda: save({"tensor": kv, "device_id": torch.tensor(0, dtype=torch.int32)}),
                  results, "serialize")
    size = len(blob)
    _timed(lambda: np.copyto(registered[:size], np.frombuffer(blob, dtype=np.uint8)), results, "put_copy")
    data = _timed(lambda: registered[:size].tobytes(), results, "get_copy")
    host = _timed(lambda: load(data)["tensor"], results, "deserialize")
    remote = _timed(lambda: host.to("cuda"), results, "h2d")

    def scatter():
        for layer, (k, v) in enumerate(caches):
            k.view(-1, KV_HEADS, HEAD_DIM)[slots] = remote[0][layer]
            v.view(-1, KV_HEADS, HEAD_DIM)[slots] = remote[1][layer]

    _timed(scatter, results, "scatter")
    return nbytes


def measure(out_dir: Path) -> dict:
    import safetensors
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    pages = max(TOKENS) // PAGE + 64
    caches = [tuple(torch.randn(pages, PAGE, KV_HEADS, HEAD_DIM, dtype=torch.bfloat16, device="cuda")
                    for _ in range(2)) for _ in range(LAYERS)]
    bytes_per_token = LAYERS * 2 * KV_HEADS * HEAD_DIM * 2
    registered = torch.empty(max(TOKENS) * bytes_per_token + (1 << 20), dtype=torch.uint8,
                             pin_memory=True).numpy()
    generator = torch.Generator().manual_seed(0)
    rows = ["stage,chain,tokens,kv_bytes,median_s,gbps"]
    for tokens in TOKENS:
        order = torch.randperm(pages, generator=generator)[: tokens // PAGE]
        slots = (order[:, None] * PAGE + torch.arange(PAGE)).flatten().cuda()
        results: dict[str, list[float]] = {}
        nbytes = 0
        for _ in range(REPEATS + 1):  # the first round warms allocators and kernels up
            nbytes = _one_request(caches, slots, registered, results)
        medians = {name: statistics.median(times[1:]) for name, times in results.items()}
        medians["send_total"] = sum(medians[name] for name in SEND)
        medians["receive_total"] = sum(medians[name] for name in RECEIVE)
        for name, seconds in medians.items():
            chain = "send" if name in SEND or name == "send_total" else "receive"
            rows.append(f"{name},{chain},{tokens},{nbytes},{seconds:.6e},{nbytes / seconds / 1e9:.2f}")
            print(rows[-1], flush=True)
    return record.write(out_dir, "store_staging", rows, safetensors=safetensors.__version__, repeats=REPEATS,
                        model_shape={"layers": LAYERS, "kv_heads": KV_HEADS, "head_dim": HEAD_DIM,
                                     "page_tokens": PAGE, "dtype": "bfloat16"})


if __name__ == "__main__":
    record.command_line(__doc__, measure)
