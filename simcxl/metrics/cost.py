"""What a simulated rack costs to buy: a bill of materials from the scenario and a price per item.

The bill counts what the scenario builds: GPUs, GPU servers (one per cluster node, the fabric's node), RDMA
NICs and their line rate, the CXL switch, host ports (by lanes) and memory devices and their DRAM, memory
servers of an RDMA pool and their DRAM. So what a sweep changes that costs money changes the bill: nodes,
GPUs per node, NICs per node and ``fabric.nic.line_rate``, ``fabric.cxl.host_ports_per_node`` and
``host_port_bandwidth`` (adapter lanes, and switches when the lanes outgrow one). Prices are capital cost in US dollars; the
defaults below say where each comes from, and most hardware here has no public list price, so they are
estimates to be overridden (``simcxl plan``'s ``costs:``, or ``CostTable(**prices)``), never results.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from simcxl.config.units import parse_bandwidth, parse_size

NIC_UNIT_GBPS = 100
"""A NIC's line rate is priced per this many Gb/s (item ``nic_100gbps``), on top of its per-adapter price."""
CXL_PORT_LANES = 16
"""The lanes of the x16 host adapter ``cxl_host_port`` prices; a port of another width is priced per lane."""


class CostTable(BaseModel):
    """Price per item, USD. A server is a cluster node (``cluster.gpus_per_node`` GPUs, its
    ``nics_per_node`` NICs and ``fabric.cxl.host_ports_per_node`` CXL ports), as the fabric builds it
    (:class:`simcxl.fabric.topology.Topology`): the bill counts one chassis per node and one GPU slot per GPU."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu: float = Field(27_500, ge=0)
    """H100 SXM: $25,000-30,000 new (awesomeagents.ai/hardware/nvidia-h100, 2026; aiwiki.ai gives $25-40k)."""
    gpu_server: float = Field(30_000, ge=0)
    """One GPU server (a cluster node) without its GPU slots, GPUs or NICs: chassis, CPUs, host DRAM, power.
    Estimate, no public list price found: half of the $60,000 formerly charged per 8-GPU server."""
    gpu_slot: float = Field(3_750, ge=0)
    """A node's baseboard and NVSwitch share per GPU it holds: estimate (the other half of $60,000 per 8-GPU
    server, so an 8-GPU node costs what it did; a 4-GPU node costs $45,000, not $30,000 or $60,000)."""
    nic: float = Field(1_000, ge=0)
    """An RDMA adapter, its cable and ToR port share, before its line rate: estimate, no public list price found
    (with ``nic_100gbps`` a ConnectX-7 400 Gb/s costs the $2,500 formerly charged)."""
    nic_100gbps: float = Field(375, ge=0)
    """A NIC's line rate, per 100 Gb/s (optics and ToR capacity scale with it): estimate, so that a sweep of
    ``fabric.nic.line_rate`` changes the bill."""
    cxl_switch: float = Field(15_000, ge=0)
    """XConn XC50256-class 256-lane CXL 2.0 switch in a pooling chassis: estimate, no public list price found."""
    cxl_host_port: float = Field(800, ge=0)
    """An x16 CXL 2.0 host adapter (retimer add-in card) and its cable, per port: estimate, no public list price
    found. A port of another width (``fabric.cxl.host_port_bandwidth``) is priced per lane of it."""
    cxl_device: float = Field(1_000, ge=0)
    """A CXL Type-3 expander's controller and board, without its DRAM: estimate, no public list price found."""
    memory_server: float = Field(20_000, ge=0)
    """A dual-socket memory server of an RDMA KV pool, without its DRAM and NICs: estimate."""
    dram_per_gb: float = Field(5.0, ge=0)
    """DDR5 RDIMM per GB: estimate (contract prices moved widely in 2025-26)."""


def bill(resolved: dict) -> dict[str, float]:
    """Item counts of the rack a resolved scenario (``config.resolved.yaml``) describes: its nodes, each a
    server with its GPUs, NICs and CXL host ports as the fabric builds them, and the KV design's hardware."""
    cluster = resolved.get("cluster", {})
    nodes = cluster.get("nodes") or (cluster.get("prefill_nodes", 0) + cluster.get("decode_nodes", 0))
    gpus_per_node = cluster.get("gpus_per_node", 1)
    fabric = resolved.get("fabric", {})
    nics = nodes * cluster.get("nics_per_node", 1)
    counts = {"gpu": nodes * gpus_per_node, "gpu_server": nodes, "gpu_slot": nodes * gpus_per_node, "nic": nics}
    kv_type = resolved.get("kv_manager", {}).get("type")
    cxl = fabric.get("cxl")
    if cxl and kv_type in ("cxl_block", "cxl_sparse"):
        ports = nodes * cxl.get("host_ports_per_node", 1)
        port_lanes = _lanes(cxl["host_port_bandwidth"])
        lanes = cxl["devices"] * _lanes(cxl["device_link_bandwidth"]) + ports * port_lanes
        counts["cxl_switch"] = -(-lanes // cxl.get("switch_lanes", 256))
        counts["cxl_host_port"] = ports * port_lanes / CXL_PORT_LANES  # x16 adapters' worth
        counts["cxl_device"] = cxl["devices"]
        counts["dram_gb"] = cxl["devices"] * parse_size(cxl["device_capacity"]) / 1e9
    pool = fabric.get("memory_pool")
    if pool and kv_type in ("rdma_pool", "rdma_sparse"):
        counts["memory_server"] = pool["nodes"]
        counts["nic"] += pool["nodes"] * pool["nics_per_node"]
        counts["dram_gb"] = pool["nodes"] * parse_size(pool["capacity_per_node"]) / 1e9
    nic = fabric.get("nic")
    if nic and counts["nic"]:  # every NIC of the rack (GPU nodes and memory servers) is fabric.nic
        counts["nic_100gbps"] = counts["nic"] * parse_bandwidth(nic["line_rate"]) * 8 / (NIC_UNIT_GBPS * 1e9)
    return counts


def _lanes(bandwidth) -> int:
    """PCIe Gen5 / CXL 2.0 lanes of a link of this raw per-direction bandwidth (32 GT/s: ~4 GB/s a lane)."""
    return max(1, round(parse_bandwidth(bandwidth) / 4e9))


def capital_cost(counts: dict[str, float], prices: CostTable = CostTable()) -> float:
    """USD for the counted items: each count times its item's price (``dram_gb`` at ``dram_per_gb``)."""
    price = prices.model_dump()
    return sum(count * (prices.dram_per_gb if item == "dram_gb" else price[item]) for item, count in counts.items())
