"""What a simulated rack costs to buy: a bill of materials from the scenario and a price per item.

The bill counts what the scenario builds: GPUs, GPU servers, RDMA NICs, the CXL switch, its memory devices
and their DRAM, memory servers of an RDMA pool and their DRAM. Prices are capital cost in US dollars; the
defaults below say where each comes from, and most hardware here has no public list price, so they are
estimates to be overridden (``simcxl plan``'s ``costs:``, or ``CostTable(**prices)``), never results.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from simcxl.config.units import parse_bandwidth, parse_size

class CostTable(BaseModel):
    """Price per item, USD."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu: float = Field(27_500, ge=0)
    """H100 SXM: $25,000-30,000 new (awesomeagents.ai/hardware/nvidia-h100, 2026; aiwiki.ai gives $25-40k)."""
    gpu_server: float = Field(60_000, ge=0)
    """Chassis, CPUs, host DRAM, NVSwitch baseboard of an 8-GPU server, without GPUs or NICs: estimate, no
    public list price found."""
    nic: float = Field(2_500, ge=0)
    """ConnectX-7 400 Gb/s adapter and its switch port share: estimate, no public list price found."""
    cxl_switch: float = Field(15_000, ge=0)
    """XConn XC50256-class 256-lane CXL 2.0 switch in a pooling chassis: estimate, no public list price found."""
    cxl_host_port: float = Field(800, ge=0)
    """An x16 CXL 2.0 host adapter (retimer add-in card) and its cable, per port: estimate, no public list price
    found."""
    cxl_device: float = Field(1_000, ge=0)
    """A CXL Type-3 expander's controller and board, without its DRAM: estimate, no public list price found."""
    memory_server: float = Field(20_000, ge=0)
    """A dual-socket memory server of an RDMA KV pool, without its DRAM and NICs: estimate."""
    dram_per_gb: float = Field(5.0, ge=0)
    """DDR5 RDIMM per GB: estimate (contract prices moved widely in 2025-26)."""


def bill(resolved: dict) -> dict[str, float]:
    """Item counts of the rack a resolved scenario (``config.resolved.yaml``) describes."""
    cluster = resolved.get("cluster", {})
    nodes = cluster.get("nodes") or (cluster.get("prefill_nodes", 0) + cluster.get("decode_nodes", 0))
    gpus_per_node = cluster.get("gpus_per_node", 1)
    fabric = resolved.get("fabric", {})
    counts = {"gpu": nodes * gpus_per_node, "gpu_server": nodes * gpus_per_node / 8,
              "nic": nodes * cluster.get("nics_per_node", 1)}
    kv_type = resolved.get("kv_manager", {}).get("type")
    cxl = fabric.get("cxl")
    if cxl and kv_type in ("cxl_block", "cxl_sparse"):
        ports = nodes * cxl.get("host_ports_per_node", 1)
        lanes = cxl["devices"] * _lanes(cxl["device_link_bandwidth"]) + ports * _lanes(cxl["host_port_bandwidth"])
        counts["cxl_switch"] = -(-lanes // cxl.get("switch_lanes", 256))
        counts["cxl_host_port"] = ports
        counts["cxl_device"] = cxl["devices"]
        counts["dram_gb"] = cxl["devices"] * parse_size(cxl["device_capacity"]) / 1e9
    pool = fabric.get("memory_pool")
    if pool and kv_type in ("rdma_pool", "rdma_sparse"):
        counts["memory_server"] = pool["nodes"]
        counts["nic"] += pool["nodes"] * pool["nics_per_node"]
        counts["dram_gb"] = pool["nodes"] * parse_size(pool["capacity_per_node"]) / 1e9
    return counts


def _lanes(bandwidth) -> int:
    """PCIe Gen5 / CXL 2.0 lanes of a link of this raw per-direction bandwidth (32 GT/s: ~4 GB/s a lane)."""
    return max(1, round(parse_bandwidth(bandwidth) / 4e9))


def capital_cost(counts: dict[str, float], prices: CostTable = CostTable()) -> float:
    """USD for the counted items (a GPU server is priced per 8 GPUs: its share when a node holds fewer)."""
    price = prices.model_dump()
    return sum(count * (prices.dram_per_gb if item == "dram_gb" else price[item]) for item, count in counts.items())
