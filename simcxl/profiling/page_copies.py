"""Measure what one KV page costs on a per-page copy path: ``python -m simcxl.profiling.page_copies -o DIR``.

A paged, layer-separate KV cache (vLLM) that is onboarded from host memory page by page issues one
copy per page, layer and K/V tensor. This script times N such copies between pinned host memory and
the GPU, issued back to back on one stream with a single synchronization at the end (as an
asynchronous connector would), against one bulk copy of the same bytes, for page sizes of 2-256 KiB.
``per_copy_us = (t_pages - t_bulk) / N`` is the cost one descriptor adds on that path; it is what
``kv_manager.descriptor_time`` stands for. Two issuers: ``cudart`` (cudaMemcpyAsync called through
ctypes: the driver's own cost plus ~1 us of call overhead) and ``torch`` (``Tensor.copy_`` from Python,
what a Python connector pays). Writes DIR/page_copies.csv and DIR/page_copies_info.json.
"""

from __future__ import annotations

import ctypes
import time
from pathlib import Path

from simcxl.profiling import record

PAGE_KIB = (2, 8, 32, 128, 256)
COPIES = 4096
REPEATS = 5
H2D, D2H = 1, 2  # cudaMemcpyKind


def _cudart():
    """libcudart as PyTorch loaded it, with cudaMemcpyAsync's signature declared."""
    import torch

    for name in ("libcudart.so", "libcudart.so.13", "libcudart.so.12"):
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        lib = ctypes.CDLL(torch.cuda.__file__.replace("cuda/__init__.py", "lib/libcudart.so"))
    lib.cudaMemcpyAsync.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]
    lib.cudaMemcpyAsync.restype = ctypes.c_int
    return lib


def _best(run) -> float:
    import torch

    times = []
    for _ in range(REPEATS):
        torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(out_dir: Path) -> dict:
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    lib = _cudart()
    stream = torch.cuda.current_stream()
    handle = ctypes.c_void_p(stream.cuda_stream)
    rows = ["issuer,direction,page_bytes,copies,pages_s,bulk_s,per_copy_us,page_gbps,bulk_gbps"]
    for kib in PAGE_KIB:
        page = kib * 1024
        total = page * COPIES
        host = torch.empty(total, dtype=torch.uint8, pin_memory=True)
        device = torch.empty(total, dtype=torch.uint8, device="cuda")
        for direction, kind in (("h2d", H2D), ("d2h", D2H)):
            dst, src = (device, host) if kind == H2D else (host, device)
            d0, s0 = dst.data_ptr(), src.data_ptr()

            def bulk():
                lib.cudaMemcpyAsync(d0, s0, total, kind, handle)

            def pages_cudart():
                for i in range(COPIES):
                    lib.cudaMemcpyAsync(d0 + i * page, s0 + i * page, page, kind, handle)

            views = [(dst[i * page:(i + 1) * page], src[i * page:(i + 1) * page]) for i in range(COPIES)]

            def pages_torch():
                for d, s in views:
                    d.copy_(s, non_blocking=True)

            bulk_s = _best(bulk)
            for issuer, run in (("cudart", pages_cudart), ("torch", pages_torch)):
                pages_s = _best(run)
                rows.append(f"{issuer},{direction},{page},{COPIES},{pages_s:.6e},{bulk_s:.6e},"
                            f"{(pages_s - bulk_s) / COPIES * 1e6:.3f},{total / pages_s / 1e9:.2f},"
                            f"{total / bulk_s / 1e9:.2f}")
                print(rows[-1], flush=True)
        del host, device
    return record.write(out_dir, "page_copies", rows, copies=COPIES, repeats=REPEATS)


if __name__ == "__main__":
    record.command_line(__doc__, measure)
