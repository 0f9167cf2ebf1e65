"""``rdma_pool``: the KV lives in a disaggregated DRAM pool on memory servers, reached over RDMA.

The Mooncake-store design: prefill GPUs write each prompt's new KV into the memory servers' DRAM with
GPUDirect RDMA, and the pool is the rack-wide prefix cache. Before a request can decode, its decode
instance reserves HBM for the *whole* prefix and pulls all of it from the pool with one-sided READs
(SAC's transmission bottleneck P1 and local-memory waste P2, here at the HBM; ``rdma_sparse`` is SAC's
baseline as the paper describes it, with the prefix in decode host memory).
Every transfer of the rack goes through the memory servers' NICs, so they are where the flows meet.

Publishing is a metadata update at the pool's master (Mooncake store's put-start / put-end RPCs): two
RPC round trips, no lock. Each GPU talks to one memory-server NIC (GPUs are spread round-robin over
the pool's NICs), as a transfer engine binds one queue pair per NIC pair.
"""

from __future__ import annotations

from typing import Generator

import simpy

from simcxl.kvcache.pool import PooledKV

PUBLISH_RPCS = 2  # Mooncake store: PutStart before the write's metadata is visible, PutEnd after


class RDMAPool(PooledKV):
    name = "rdma_pool"
    medium = "rdma_pool"
    fabric_section = ("memory_pool", "memory servers", "hardware/rdma_memory_pool.yaml")

    def __init__(self, env, scenario, llm, fabric, block_tokens: int):
        self.spec = fabric.spec.memory_pool
        ports = fabric.topology.memory_ports
        self.port_of = {gpu.name: ports[i % len(ports)] for i, gpu in enumerate(fabric.topology.gpus)}
        super().__init__(env, scenario, llm, fabric, block_tokens)

    @property
    def pool_capacity(self) -> float:
        return self.spec.nodes * self.spec.capacity_per_node

    def pool_io(self, gpu, nbytes: float, write: bool) -> simpy.Event:
        rdma, port = self.fabric.rdma, self.port_of[gpu.name]
        if write:
            return rdma.write(gpu, port, nbytes, dst_gpu=False)
        return rdma.bulk_read(gpu, port, nbytes, target_gpu=False)

    def sync(self, request, instance) -> Generator:
        """Metadata RPCs to the pool's master: a request-response each, host to host."""
        rdma = self.fabric.rdma
        rpc = 2 * rdma.one_way_latency(gpu_memory=False) + rdma.nic.per_transfer_overhead
        yield self.env.timeout(PUBLISH_RPCS * rpc)
        self.insert_blocks(request)
