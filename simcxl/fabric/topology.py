"""The rack built from the fabric profile: GPUs on PCIe, RDMA NICs on a ToR switch, host DRAM, an
optional CXL switch with memory devices shared by every node, and optional memory servers (DRAM
behind RDMA NICs, no GPUs).

Every physical link is full duplex, so it is two :class:`Link` objects, one per direction. The ToR
switch is non-blocking (its ports are the NIC links) and adds only its forwarding latency. A NIC also
has a message engine (a link whose capacity is messages/s) that every RDMA operation through it uses.
A CXL memory device has its switch-port link each way and its media, which reads and writes share.
"""

from __future__ import annotations

from dataclasses import dataclass

from simcxl.config.schema import FabricSpec
from simcxl.fabric.network import Link


@dataclass(frozen=True)
class NIC:
    tx: Link
    rx: Link
    messages: Link


@dataclass(frozen=True)
class GPUPort:
    """A GPU's attachment to the fabric: its PCIe link each way, its NIC, its node's DRAM and CXL port."""

    name: str
    node: int
    pcie_out: Link
    pcie_in: Link
    nic: NIC
    dram: Link | None
    cxl_out: Link | None
    cxl_in: Link | None


@dataclass(frozen=True)
class MemoryPort:
    """One NIC of a memory server and the server's DRAM behind it: an RDMA endpoint with no GPU."""

    name: str
    node: int
    nic: NIC
    dram: Link


@dataclass(frozen=True)
class CXLDevice:
    """A Type-3 memory device behind the CXL switch."""

    name: str
    link_in: Link
    link_out: Link
    media: Link


class Topology:
    """``nodes`` x ``gpus_per_node`` GPUs; GPU g of a node uses NIC g mod n and CXL host port g mod m."""

    def __init__(self, fabric: FabricSpec, nodes: int, gpus_per_node: int, nics_per_node: int = 1):
        for name, value in (("nodes", nodes), ("gpus_per_node", gpus_per_node), ("nics_per_node", nics_per_node)):
            if value < 1:
                raise ValueError(f"topology: {name} must be >= 1, got {value}")
        self.fabric = fabric
        self.links: list[Link] = []
        self.nodes: list[list[GPUPort]] = []
        cxl = fabric.cxl
        self.cxl_devices = [self._cxl_device(i) for i in range(cxl.devices)] if cxl else []
        for node in range(nodes):
            nics = [self._nic(f"node{node}.nic{i}") for i in range(nics_per_node)]
            dram = self._link(f"node{node}.dram", "dram", fabric.host_dram.bandwidth) if fabric.host_dram else None
            ports = [(self._link(f"node{node}.cxl{i}.out", "cxl_port", cxl.host_port_bandwidth * cxl.link_efficiency),
                      self._link(f"node{node}.cxl{i}.in", "cxl_port", cxl.host_port_bandwidth * cxl.link_efficiency))
                     for i in range(cxl.host_ports_per_node)] if cxl else [(None, None)]
            gpus = []
            for g in range(gpus_per_node):
                name = f"node{node}.gpu{g}"
                cxl_out, cxl_in = ports[g % len(ports)]
                gpus.append(GPUPort(
                    name, node,
                    self._link(f"{name}.pcie.d2h", "pcie", fabric.pcie.bandwidth, fabric.pcie.latency),
                    self._link(f"{name}.pcie.h2d", "pcie", fabric.pcie.bandwidth, fabric.pcie.latency),
                    nics[g % nics_per_node], dram, cxl_out, cxl_in))
            self.nodes.append(gpus)
        self.memory_ports = self._memory_ports(nodes) if fabric.memory_pool else []

    def _memory_ports(self, first_node: int) -> list[MemoryPort]:
        """Memory servers are numbered after the GPU nodes; each NIC is one port onto the server's DRAM."""
        pool = self.fabric.memory_pool
        ports = []
        for server in range(first_node, first_node + pool.nodes):
            dram = self._link(f"node{server}.dram", "dram", pool.dram_bandwidth)
            ports += [MemoryPort(f"node{server}.nic{i}", server, self._nic(f"node{server}.nic{i}"), dram)
                      for i in range(pool.nics_per_node)]
        return ports

    def _link(self, name: str, kind: str, capacity: float, latency: float = 0.0) -> Link:
        link = Link(name, kind, capacity, latency)
        self.links.append(link)
        return link

    def _nic(self, name: str) -> NIC:
        nic = self.fabric.nic
        rate = nic.line_rate * nic.efficiency
        return NIC(self._link(f"{name}.tx", "nic", rate, nic.latency),
                   self._link(f"{name}.rx", "nic", rate, nic.latency),
                   self._link(f"{name}.messages", "nic_messages", nic.message_rate))

    def _cxl_device(self, index: int) -> CXLDevice:
        cxl = self.fabric.cxl
        name = f"cxl.dev{index}"
        link = cxl.device_link_bandwidth * cxl.link_efficiency
        return CXLDevice(name, self._link(f"{name}.in", "cxl_device", link),
                         self._link(f"{name}.out", "cxl_device", link),
                         self._link(f"{name}.media", "cxl_media", cxl.device_media_bandwidth))

    @property
    def gpus(self) -> list[GPUPort]:
        return [gpu for node in self.nodes for gpu in node]
