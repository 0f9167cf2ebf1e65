"""``rdma_sparse``: SAC's RDMA baseline as the paper describes it: HiSparse over an RDMA memory pool.

SAC's authors run SGLang's HiSparse with a radix cache in the memory backend, "the KV cache entirely
offloaded" to it; over RDMA the backend is reached through an "indirect host-staged data path", and such
pools "fetch the entire prefix KV cache from remote storage to local memory before decoding" (SAC P1),
wasting local memory (P2). HiSparse itself (SGLang's hisparse guide) keeps each decode request's full KV
in the decode node's pinned host memory and only a hot buffer in HBM; in PD disaggregation the KV arrives
by RDMA straight into that host pool. So, per request:

1. prefill writes the prompt's new KV into the RDMA pool and publishes it (as ``rdma_pool``);
2. the decode instance reserves its hot buffer in HBM, then room for the whole prefix in its host pool,
   a bounded resource its requests share (``kv_manager.host_pool``, default the node's host DRAM): when
   it is full, requests wait for running ones to finish (P2);
3. the whole prefix is READ from the pool into host memory (P1), off the decode loop (HiSparse's transfer
   thread), and the request joins the batch;
4. every step HiSparse's swap-in kernel gathers the top-k entries that miss the hot buffer from host
   memory into HBM over each GPU's PCIe link: a zero-copy gather priced from the measurement
   ``simcxl.profiling.host_gathers`` (GPU ``host_gather_latency`` + bytes at ``host_gather_bandwidth``);
5. when the request finishes its host-pool room frees.

On one server (an aggregated instance, ``InstanceView.colocated``: SAC's own testbed, the pool a loopback over
the host's one NIC) the prefix crosses the NIC once: a cached prefix is prefetched whole into local host memory
before the prompt's last tokens are computed, and copied from there into HBM over PCIe; HiSparse's host tier
keeps that copy, and the prompt's new KV passes through host memory on its host-staged way to the pool, so step
3 moves nothing more.
"""

from __future__ import annotations

from typing import Generator

import simpy

from simcxl.kvcache.rdma_pool import RDMAPool
from simcxl.kvcache.sparse_decode import SparseDecode


class RDMASparse(SparseDecode, RDMAPool):
    name = "rdma_sparse"
    reads = RDMAPool.reads | SparseDecode.sparse_keys | {"host_pool"}

    @classmethod
    def missing(cls, scenario) -> str | None:
        problem = super().missing(scenario)  # a sparse model, memory servers
        if problem:
            return problem
        gpu, fabric = scenario.gpu, scenario.fabric
        if gpu.host_gather_bandwidth is None:
            return (f"'rdma_sparse' prices HiSparse's per-step gather from host memory with the GPU's measured "
                    f"host_gather_bandwidth and host_gather_latency; {gpu.name}'s profile has none (measure "
                    f"them with python -m simcxl.profiling.host_gathers, e.g. hardware/h200.yaml)")
        if fabric.host_dram is None:
            return "'rdma_sparse' keeps each request's KV in decode host memory: add a fabric.host_dram section " \
                   "(e.g. include hardware/host_dram_ddr5.yaml)"
        return None

    def __init__(self, env, scenario, llm, fabric, block_tokens: int):
        super().__init__(env, scenario, llm, fabric, block_tokens)
        instances_per_node = scenario.cluster.gpus_per_node // scenario.cluster.tensor_parallel
        capacity = scenario.kv_manager.host_pool or scenario.fabric.host_dram.capacity / instances_per_node
        self.host_pool_bytes = capacity
        self._host_pools: dict[int, simpy.Container] = {}  # by decode instance, made when first used
        self._held: dict[int, float] = {}  # request id -> host-pool bytes it holds
        self.host_pool_wait = 0.0  # seconds requests waited, in all, for host-pool room

    def _host_pool(self, decode) -> simpy.Container:
        if decode.index not in self._host_pools:
            self._host_pools[decode.index] = simpy.Container(self.env, self.host_pool_bytes, init=self.host_pool_bytes)
        return self._host_pools[decode.index]

    def too_large(self, input_tokens: int) -> str | None:
        nbytes = self.llm.kv_bytes(input_tokens)
        if nbytes > self.host_pool_bytes:
            return (f"a prompt of {input_tokens:,} tokens needs {nbytes / 1e9:.1f} GB of the decode host pool, which "
                    f"holds {self.host_pool_bytes / 1e9:.1f} GB; raise kv_manager.host_pool or shorten prompts")
        return None

    def _hold_host_room(self, request, decode) -> Generator:
        """Room for the whole prefix in the decode instance's host pool, waiting for finished requests to free
        it (a wait for KV space: it counts as ``decode_wait``); returns the bytes held."""
        nbytes = self.llm.kv_bytes(request.input_tokens)
        waiting = self.env.now
        yield self._host_pool(decode).get(nbytes)
        self._held[request.id] = nbytes
        request.decode_wait += self.env.now - waiting
        self.host_pool_wait += self.env.now - waiting
        return nbytes

    def _load_blocks(self, instance, node: int, blocks: int) -> simpy.Event:
        if not instance.colocated:
            return super()._load_blocks(instance, node, blocks)
        return self.env.process(self._prefetch_prefix(instance, blocks))

    def _prefetch_prefix(self, instance, blocks: int) -> Generator:
        """One server: the cached prefix from the pool into local host memory over the NIC (P1, host-staged:
        no GPUDirect), then into the GPUs over PCIe."""
        nbytes = blocks * self.prefix_cache.block_bytes
        rdma, shard = self.fabric.rdma, nbytes / len(instance.gpus)
        yield self.all_of([rdma.bulk_read(gpu, self.port_of[gpu.name], shard, target_gpu=False, gpu_memory=False)
                           for gpu in instance.gpus])
        self.bytes_moved[f"{self.medium}_prefix_read"] += nbytes
        yield self.all_of([self.fabric.pcie.copy(gpu, shard, to_device=True) for gpu in instance.gpus])
        self.bytes_moved["host_prefix_load"] += nbytes

    def _deliver(self, request, decode) -> Generator:
        """Room in the host pool, then the whole prefix into it (one server: it is there already)."""
        nbytes = yield from self._hold_host_room(request, decode)
        if decode.colocated:
            return
        rdma, shard = self.fabric.rdma, nbytes / len(decode.gpus)
        yield self.all_of([rdma.bulk_read(gpu, self.port_of[gpu.name], shard, target_gpu=False, gpu_memory=False)
                           for gpu in decode.gpus])
        self.bytes_moved[f"{self.medium}_read"] += nbytes

    def finished(self, request) -> None:
        held = self._held.pop(request.id, 0.0)
        if held:
            self._host_pools[request.decode_instance].put(held)

    def layer_fetch_latency(self) -> float:
        return self.scenario.gpu.host_gather_latency

    def fetch_misses(self, step, entries: float) -> simpy.Event:
        gpu_spec, network, gpus = self.scenario.gpu, self.fabric.network, step.instance.gpus
        share = entries / len(gpus) * self.entry_bytes
        self.bytes_moved["host_topk_fetch"] += share * len(gpus)
        return self.all_of([network.transfer((gpu.dram, gpu.pcie_in), share, overhead=gpu_spec.host_gather_latency,
                                             max_rate=gpu_spec.host_gather_bandwidth, latency=0.0)
                            for gpu in gpus])

    def summary(self) -> dict:
        return {**super().summary(), "host_pool_bytes": self.host_pool_bytes, "host_pool_wait_s": self.host_pool_wait}
