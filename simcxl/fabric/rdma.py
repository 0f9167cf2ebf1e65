"""RDMA between GPUs of different nodes: one-sided WRITE and READ through NICs and the ToR switch.

GPUDirect RDMA moves bytes GPU -> PCIe -> NIC -> ToR -> NIC -> PCIe -> GPU. Every operation also
consumes the message engines of both NICs (capacity ``messages_per_s``), which is what caps small
messages; READs are further limited by the requester's outstanding read credits per round trip.
Without GPUDirect, data is staged through host DRAM with a PCIe copy at each end.
"""

from __future__ import annotations

from typing import Generator

import simpy

from simcxl.config.schema import NICSpec, PCIeSpec, SwitchSpec
from simcxl.fabric.network import Link, Network, fetch, path_latency
from simcxl.fabric.pcie import PCIe
from simcxl.fabric.topology import GPUPort


BULK_READ_CHUNK_BYTES = 64 * 1024 * 1024  # transfer libraries post a contiguous region as READs of this size


class RDMA:
    def __init__(self, network: Network, nic: NICSpec, tor: SwitchSpec, pcie: PCIeSpec):
        self.network = network
        self.env = network.env
        self.nic = nic
        self.tor = tor
        self.pcie = PCIe(network, pcie)
        self._paths: dict[tuple[str, str, bool, bool], tuple[tuple[Link, ...], int, float]] = {}

    def _wire(self, src: GPUPort, dst: GPUPort, message_bytes: float, src_gpu: bool, dst_gpu: bool
              ) -> tuple[tuple[Link, ...], tuple[float, ...], float]:
        """Links (and per-byte weights) of data moving from ``src`` to ``dst`` (GPU memory or host DRAM), and
        their latency. The links of each pair of ends are worked out once: every transfer asks."""
        key = (src.name, dst.name, src_gpu, dst_gpu)
        path = self._paths.get(key)
        if path is None:
            head = (src.pcie_out,) if src_gpu else ((src.dram,) if src.dram else ())
            tail = (dst.pcie_in,) if dst_gpu else ((dst.dram,) if dst.dram else ())
            data: tuple[Link, ...] = head + (src.nic.tx, dst.nic.rx) + tail
            engines = (src.nic.messages,) if src.nic is dst.nic else (src.nic.messages, dst.nic.messages)
            path = self._paths[key] = (data + engines, len(data), path_latency(data + engines))
        links, data_links, latency = path
        return links, (1.0,) * data_links + (1.0 / message_bytes,) * (len(links) - data_links), latency

    def one_way_latency(self, gpu_memory: bool = True) -> float:
        nic_hops = 2 * self.nic.latency + self.tor.latency
        return nic_hops + (2 * self.pcie.spec.latency if gpu_memory else 0.0)

    def write(self, src: GPUPort, dst: GPUPort, nbytes: float, message_bytes: float | None = None,
              src_gpu: bool = True, dst_gpu: bool = True) -> simpy.Event:
        """One-sided WRITE of ``nbytes`` as messages of ``message_bytes`` (default: one message) between
        the GPU memory (or, with ``src_gpu``/``dst_gpu`` false, the host DRAM) of two nodes."""
        if self.nic.gpudirect or not (src_gpu or dst_gpu):
            return self._write(src, dst, nbytes, message_bytes, src_gpu, dst_gpu)
        return self.env.process(self._staged_write(src, dst, nbytes, message_bytes, src_gpu, dst_gpu))

    def _write(self, src: GPUPort, dst: GPUPort, nbytes: float, message_bytes: float | None, src_gpu: bool,
               dst_gpu: bool) -> simpy.Event:
        links, weights, latency = self._wire(src, dst, message_bytes or max(nbytes, 1.0), src_gpu, dst_gpu)
        return self.network.transfer(links, nbytes, overhead=self.nic.per_transfer_overhead + self.tor.latency,
                                     latency=latency, weights=weights)

    def _staged_write(self, src: GPUPort, dst: GPUPort, nbytes: float, message_bytes: float | None, src_gpu: bool,
                      dst_gpu: bool) -> Generator:
        """Without GPUDirect a GPU end is staged through its host DRAM by a PCIe copy."""
        if src_gpu:
            yield self.pcie.copy(src, nbytes, to_device=False)
        yield self._write(src, dst, nbytes, message_bytes, src_gpu=False, dst_gpu=False)
        if dst_gpu:
            yield self.pcie.copy(dst, nbytes, to_device=True)

    def read(self, requester: GPUPort, target: GPUPort, items: float, item_bytes: float,
             gpu_memory: bool = True, target_gpu: bool | None = None) -> simpy.Event:
        """``items`` one-sided READs of ``item_bytes`` each from ``target`` into ``requester`` (GPU memory at
        both ends by default; ``target_gpu=False`` reads the target node's host DRAM)."""
        target_gpu = gpu_memory if target_gpu is None else target_gpu
        links, weights, _ = self._wire(target, requester, item_bytes, target_gpu, gpu_memory)
        round_trip = 2 * self.one_way_latency(gpu_memory)
        return fetch(self.network, links, items, item_bytes, round_trip, self.nic.outstanding_reads,
                     overhead=self.nic.per_transfer_overhead, weights=weights)

    def bulk_read(self, requester: GPUPort, target: GPUPort, nbytes: float, target_gpu: bool = True,
                  gpu_memory: bool = True) -> simpy.Event:
        """Read a contiguous region of ``nbytes`` from ``target`` into ``requester``'s GPU memory (or, with
        ``gpu_memory=False``, its node's host DRAM)."""
        chunks = max(1, -(-int(nbytes) // BULK_READ_CHUNK_BYTES))
        return self.read(requester, target, chunks, nbytes / chunks, gpu_memory=gpu_memory, target_gpu=target_gpu)
