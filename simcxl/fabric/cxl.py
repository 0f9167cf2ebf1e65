"""A CXL memory pool: a CXL switch with Type-3 memory devices, shared by every node of the rack.

Two ways in, as in TraCT and Beluga:
- DMA (a copy engine moves a bulk block): bandwidth-bound flows over GPU PCIe -> host CXL port ->
  switch -> device link -> device media, after a DMA setup;
- load/store at cache-line granularity (what SAC uses for top-k entries): a request-response stream
  limited by the requester's memory-level parallelism and the round-trip load latency (see ``fetch``).
With ``interleave`` a transfer is striped over every device, so their bandwidths add up; otherwise it
lands on one device chosen by its key.

The pool is not coherent across hosts: a writer flushes its cache lines before publishing, and
cross-host locks cost round trips at CXL latency. Those costs are here so KV managers pay them.
"""

from __future__ import annotations

import math

import simpy

from simcxl.config.schema import CXLSpec, PCIeSpec
from simcxl.fabric.network import Network, fetch, striped
from simcxl.fabric.pcie import with_floor
from simcxl.fabric.topology import CXLDevice, GPUPort, Topology


class CXLPool:
    def __init__(self, network: Network, topology: Topology, spec: CXLSpec, pcie: PCIeSpec):
        self.network = network
        self.env = network.env
        self.devices = topology.cxl_devices
        self.spec = spec
        self.pcie = pcie

    @property
    def capacity(self) -> float:
        return self.spec.devices * self.spec.device_capacity

    def load_latency(self, from_gpu: bool) -> float:
        """Round trip of one cache-line load: device, switch hops both ways, and the GPU's PCIe both ways."""
        spec = self.spec
        latency = spec.device_latency + 2 * spec.switch_hops * spec.switch_latency
        return latency + (2 * self.pcie.latency if from_gpu else 0.0)

    def _targets(self, key: int) -> list[CXLDevice]:
        return self.devices if self.spec.interleave else [self.devices[key % len(self.devices)]]

    def dma(self, gpu: GPUPort, nbytes: float, write: bool, key: int = 0) -> simpy.Event:
        """A bulk copy between GPU memory and the pool, striped over the target devices (one flow)."""
        paths = [(gpu.pcie_out, gpu.cxl_out, device.link_in, device.media) if write
                 else (device.media, device.link_out, gpu.cxl_in, gpu.pcie_in) for device in self._targets(key)]
        links, weights = striped(paths)
        done = self.network.transfer(links, nbytes, overhead=self.pcie.dma_setup,
                                     latency=self.load_latency(from_gpu=True) / 2, weights=weights)
        return with_floor(self.env, done, self.pcie.min_copy_time)

    def load(self, requesters: GPUPort | list[GPUPort], items: float, item_bytes: float, from_gpu: bool = True,
             key: int = 0) -> simpy.Event:
        """``items`` reads of ``item_bytes`` each by cache-line loads, spread evenly over the requesters
        (e.g. the GPUs of one tensor-parallel instance) and the target devices: one flow."""
        spec = self.spec
        requesters = requesters if isinstance(requesters, list) else [requesters]
        lines = items * math.ceil(item_bytes / spec.line_bytes)
        outstanding = spec.gpu_outstanding_loads if from_gpu else spec.cpu_outstanding_loads
        paths = [(device.media, device.link_out, gpu.cxl_in) + ((gpu.pcie_in,) if from_gpu else ())
                 for device in self._targets(key) for gpu in requesters]
        links, weights = striped(paths)
        return fetch(self.network, links, lines, spec.line_bytes, self.load_latency(from_gpu),
                     outstanding * len(requesters), weights=weights)

    def flush_time(self, nbytes: float) -> float:
        """Write back ``nbytes`` of CPU-cached lines before publishing them (clflushopt, then a fence)."""
        lines = math.ceil(nbytes / self.spec.line_bytes)
        return math.ceil(lines / self.spec.cpu_outstanding_loads) * self.load_latency(from_gpu=False)

    def lock_time(self) -> float:
        """Acquire or release a cross-host lock: atomic round trips to the pool."""
        return self.spec.lock_round_trips * self.load_latency(from_gpu=False)
