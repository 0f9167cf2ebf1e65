"""PCIe copies between host DRAM and a GPU (cudaMemcpy with pinned memory, the copy engines).

A copy costs a fixed DMA setup, then its bytes at the fair share of the GPU's PCIe link (and the
node's DRAM, if modelled), and never less than ``min_copy_time``: on the measured H100 Gen5 x16 a
4 KiB and a 64 KiB copy both take ~16 us (validation/reference/h100_pcie_copies.csv).
"""

from __future__ import annotations

import simpy

from simcxl.config.schema import PCIeSpec
from simcxl.fabric.network import Link, Network
from simcxl.fabric.topology import GPUPort


def with_floor(env: simpy.Environment, done: simpy.Event, floor: float) -> simpy.Event:
    """``done``, but not before ``floor`` seconds from now."""
    return env.all_of([done, env.timeout(floor)]) if floor > 0 else done


class PCIe:
    def __init__(self, network: Network, spec: PCIeSpec):
        self.network = network
        self.spec = spec

    def copy(self, gpu: GPUPort, nbytes: float, to_device: bool) -> simpy.Event:
        """One host <-> device copy of ``nbytes``."""
        links: tuple[Link, ...] = (gpu.pcie_in,) if to_device else (gpu.pcie_out,)
        if gpu.dram is not None:
            links += (gpu.dram,)
        done = self.network.transfer(links, nbytes, overhead=self.spec.dma_setup)
        return with_floor(self.network.env, done, self.spec.min_copy_time)
