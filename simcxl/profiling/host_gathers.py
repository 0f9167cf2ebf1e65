"""Measure gathers of small KV entries from pinned host memory into HBM: ``python -m simcxl.profiling.host_gathers -o DIR``.

SGLang's HiSparse keeps the KV cache of DeepSeek-V3.2 (656 B per token per layer in its FP8 MLA layout) in
host memory and, every decode step, brings the top-k entries that miss its HBM hot buffer into HBM. This
script times the ways such a gather can be done, for k scattered entries (random rows of a 1.3 GB pool):
- ``zero_copy``: one GPU kernel (``index_select``) reading the pinned host pool directly over PCIe through
  its mapped device address (unified virtual addressing), as a zero-copy gather kernel does;
- ``host_gather``: the CPU gathers the rows into a pinned staging buffer, then one host-to-device copy (the
  host-staged path);
- ``per_item``: one ``cudaMemcpyAsync`` per entry (up to 8,192 entries; through ctypes);
- ``bulk``: one contiguous copy of the same bytes (the bandwidth ceiling).
Each row: method, item_bytes, items, seconds (best of 5), gbps, per_item_us. Writes DIR/host_gathers.csv and
DIR/host_gathers_info.json. :func:`fit_zero_copy` turns the CSV into a GPU profile's host_gather_* values.
"""

from __future__ import annotations

from pathlib import Path

from simcxl.profiling import record
from simcxl.profiling.page_copies import H2D, REPEATS, _best, _cudart

ENTRY_BYTES = 656
POOL_ENTRIES = 2_000_000
ITEMS = (64, 512, 2048, 8192, 32768, 131072)
PER_ITEM_LIMIT = 8192


class _Mapped:
    """A device address of pinned host memory, shaped as rows of int32 for torch.as_tensor."""

    def __init__(self, pointer: int, rows: int, words: int):
        self.__cuda_array_interface__ = {"shape": (rows, words), "typestr": "<i4", "data": (pointer, False),
                                         "version": 3, "strides": None}


def measure(out_dir: Path) -> dict:
    import ctypes

    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    lib = _cudart()
    lib.cudaHostGetDevicePointer.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_uint]
    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
    words = ENTRY_BYTES // 4
    pool = torch.randint(-2**31, 2**31 - 1, (POOL_ENTRIES, words), dtype=torch.int32).pin_memory()
    device_pointer = ctypes.c_void_p()
    if lib.cudaHostGetDevicePointer(ctypes.byref(device_pointer), ctypes.c_void_p(pool.data_ptr()), 0) != 0:
        raise SystemExit("cudaHostGetDevicePointer failed: the pinned pool is not mapped")
    mapped = torch.as_tensor(_Mapped(device_pointer.value, POOL_ENTRIES, words), device="cuda")
    generator = torch.Generator().manual_seed(0)
    rows = ["method,item_bytes,items,seconds,gbps,per_item_us"]
    for items in ITEMS:
        index = torch.randperm(POOL_ENTRIES, generator=generator)[:items]
        index_gpu = index.cuda()
        out = torch.empty((items, words), dtype=torch.int32, device="cuda")
        staging = torch.empty((items, words), dtype=torch.int32).pin_memory()
        expected = pool.index_select(0, index)

        def zero_copy():
            torch.index_select(mapped, 0, index_gpu, out=out)

        def host_gather():
            torch.index_select(pool, 0, index, out=staging)
            out.copy_(staging, non_blocking=True)

        def bulk():
            out.copy_(pool[:items], non_blocking=True)

        def per_item():
            base, dst = pool.data_ptr(), out.data_ptr()
            for i, row in enumerate(index.tolist()):
                lib.cudaMemcpyAsync(dst + i * ENTRY_BYTES, base + row * ENTRY_BYTES, ENTRY_BYTES, H2D, stream)

        methods = {"zero_copy": zero_copy, "host_gather": host_gather, "bulk": bulk}
        if items <= PER_ITEM_LIMIT:
            methods["per_item"] = per_item
        for name, run in methods.items():
            seconds = _best(run)
            if name != "bulk" and not torch.equal(out.cpu(), expected):
                raise SystemExit(f"{name} gathered the wrong rows at {items} items")
            nbytes = items * ENTRY_BYTES
            rows.append(f"{name},{ENTRY_BYTES},{items},{seconds!r},{nbytes / seconds / 1e9:.3f},"
                        f"{seconds / items * 1e6:.4f}")
            print(rows[-1], flush=True)
    return record.write(out_dir, "host_gathers", rows, entry_bytes=ENTRY_BYTES, pool_entries=POOL_ENTRIES,
                        repeats=REPEATS)


def fit_zero_copy(csv_path: Path) -> tuple[float, float]:
    """(fixed seconds, bytes per second) of the zero-copy gather: a least-squares line through the measured
    times against bytes, what a profile's ``host_gather_latency`` and ``host_gather_bandwidth`` hold."""
    import numpy as np
    import pandas as pd

    rows = pd.read_csv(csv_path)
    rows = rows[rows.method == "zero_copy"]
    design = np.column_stack([np.ones(len(rows)), rows["items"] * rows.item_bytes])
    (fixed, seconds_per_byte), *_ = np.linalg.lstsq(design, rows.seconds.to_numpy(), rcond=None)
    return float(fixed), float(1 / seconds_per_byte)


if __name__ == "__main__":
    record.command_line(__doc__, measure)
