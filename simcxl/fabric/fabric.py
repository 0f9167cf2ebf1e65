"""The fabric of one rack: the flow network, its topology, and the data paths over them."""

from __future__ import annotations

import simpy

from simcxl.config.schema import FabricSpec
from simcxl.fabric.cxl import CXLPool
from simcxl.fabric.network import Network
from simcxl.fabric.pcie import PCIe
from simcxl.fabric.rdma import RDMA
from simcxl.fabric.topology import Topology


class Fabric:
    """Every byte that moves between GPUs, hosts and the CXL pool goes through one of these paths."""

    def __init__(self, env: simpy.Environment, spec: FabricSpec, nodes: int, gpus_per_node: int,
                 nics_per_node: int = 1):
        self.spec = spec
        self.network = Network(env)
        self.topology = Topology(spec, nodes, gpus_per_node, nics_per_node)
        self.pcie = PCIe(self.network, spec.pcie)
        self.rdma = RDMA(self.network, spec.nic, spec.tor, spec.pcie)
        self.cxl = CXLPool(self.network, self.topology, spec.cxl, spec.pcie) if spec.cxl else None
