"""The rack built from the cluster profile: GPUs with PCIe links, RDMA NICs, and a top-of-rack switch.

Every physical link is full duplex, so it is two :class:`Link` objects, one per direction. The ToR
switch is non-blocking (its ports are the NIC links), so it adds only its forwarding latency.
"""

from __future__ import annotations

from dataclasses import dataclass

from simcxl.config.schema import ClusterSpec, FabricSpec
from simcxl.fabric.network import Link


@dataclass(frozen=True)
class GPUPort:
    """A GPU's attachment to the fabric: its PCIe link each way and the NIC it sends and receives on."""

    name: str
    pcie_out: Link
    pcie_in: Link
    nic_out: Link
    nic_in: Link


class Topology:
    """Nodes x GPUs, one PCIe link per GPU, ``nics_per_node`` NICs per node (GPU g uses NIC g mod n)."""

    def __init__(self, cluster: ClusterSpec, fabric: FabricSpec):
        self.fabric = fabric
        self.links: list[Link] = []
        self.nodes: list[list[GPUPort]] = []
        nic = fabric.nic
        for node in range(cluster.prefill_nodes + cluster.decode_nodes):
            nics = [(self._link(f"node{node}.nic{i}.tx", "nic", nic.line_rate * nic.efficiency, nic.latency),
                     self._link(f"node{node}.nic{i}.rx", "nic", nic.line_rate * nic.efficiency, nic.latency))
                    for i in range(cluster.nics_per_node)]
            gpus = []
            for g in range(cluster.gpus_per_node):
                name = f"node{node}.gpu{g}"
                nic_out, nic_in = nics[g % cluster.nics_per_node]
                gpus.append(GPUPort(
                    name,
                    self._link(f"{name}.pcie.d2h", "pcie", fabric.pcie.bandwidth, fabric.pcie.latency),
                    self._link(f"{name}.pcie.h2d", "pcie", fabric.pcie.bandwidth, fabric.pcie.latency),
                    nic_out, nic_in))
            self.nodes.append(gpus)

    def _link(self, name: str, kind: str, capacity: float, latency: float) -> Link:
        link = Link(name, kind, capacity, latency)
        self.links.append(link)
        return link

    def rdma_path(self, src: GPUPort, dst: GPUPort) -> tuple[Link, ...]:
        """GPUDirect RDMA: source GPU -> PCIe -> NIC -> ToR -> NIC -> PCIe -> destination GPU."""
        return (src.pcie_out, src.nic_out, dst.nic_in, dst.pcie_in)

    @property
    def rdma_extra_latency(self) -> float:
        """Latency on an RDMA path not carried by a link: the ToR hop and the software per transfer."""
        return self.fabric.tor.latency + self.fabric.nic.per_transfer_overhead
