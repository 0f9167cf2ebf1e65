"""One node, one bill: the bill counts the servers, NICs and CXL host ports the fabric builds, and what a sweep
changes that costs money (host ports, their width, NIC speed, node size) changes the cost by its priced items."""

from __future__ import annotations

import pytest

from simcxl.config.loader import load_scenario
from simcxl.fabric.topology import Topology
from simcxl.metrics.cost import CostTable, bill, capital_cost

from .conftest import CONFIGS, ROOT

RACK = ROOT / "experiments/rack/rack.yaml"
CXL = "kv_manager={type: cxl_block, prefix_cache: {}}"
PRICES = CostTable()


def cost(path, *overrides: str) -> float:
    return capital_cost(bill(load_scenario(path, list(overrides)).resolved), PRICES)


def test_the_bill_of_the_bundled_16_h100_scenario_is_its_hand_computed_total():
    """configs/plan/llama70b_fp8_h100_disagg.yaml: 4 nodes x 4 H100, one 400 Gb/s NIC per GPU, RDMA push."""
    counts = bill(load_scenario(CONFIGS / "plan/llama70b_fp8_h100_disagg.yaml").resolved)
    assert counts == {"gpu": 16, "gpu_server": 4, "gpu_slot": 16, "nic": 16, "nic_100gbps": 64}
    # 16 GPUs x $27,500 + 4 servers x $30,000 + 16 slots x $3,750 + 16 NICs x $1,000 + 16 x 4 x $375
    assert capital_cost(counts) == 440_000 + 120_000 + 60_000 + 16_000 + 24_000 == 660_000


def test_the_bill_of_the_bundled_cxl_scenario_is_its_hand_computed_total():
    """configs/tract.yaml: 8 one-GPU nodes, each its own server with a x16 CXL port, 8 x 256 GiB devices."""
    counts = bill(load_scenario(CONFIGS / "tract.yaml").resolved)
    dram = 8 * 256 * 2**30 / 1e9
    assert counts == {"gpu": 8, "gpu_server": 8, "gpu_slot": 8, "nic": 8, "nic_100gbps": 32, "cxl_switch": 1,
                      "cxl_host_port": 8, "cxl_device": 8, "dram_gb": pytest.approx(dram)}
    assert capital_cost(counts) == pytest.approx(8 * 27_500 + 8 * 30_000 + 8 * 3_750 + 8 * 1_000 + 32 * 375 + 15_000
                                                 + 8 * 800 + 8 * 1_000 + 5.0 * dram)


@pytest.mark.parametrize("config, overrides", [("plan/llama70b_fp8_h100_disagg.yaml", []),
                                               ("tract.yaml", []),
                                               ("../experiments/rack/rack.yaml", [CXL, "fabric.cxl.host_ports_per_node=2"])])
def test_the_bill_counts_the_servers_nics_and_cxl_ports_the_fabric_builds(config, overrides):
    loaded = load_scenario(CONFIGS / config, overrides)
    cluster = loaded.scenario.cluster
    nodes = cluster.nodes or cluster.prefill_nodes + cluster.decode_nodes
    topology = Topology(loaded.scenario.fabric, nodes, cluster.gpus_per_node, cluster.nics_per_node)
    counts = bill(loaded.resolved)
    assert counts["gpu_server"] == len(topology.nodes)
    assert counts["gpu"] == counts["gpu_slot"] == len(topology.gpus)
    assert counts["nic"] == len({id(gpu.nic) for gpu in topology.gpus})
    if "cxl_host_port" in counts:  # x16 ports: one adapter per distinct port the GPUs use
        assert counts["cxl_host_port"] == len({id(gpu.cxl_out) for gpu in topology.gpus})


def test_doubling_host_ports_costs_exactly_the_ports_and_the_switch_they_need():
    """rack.yaml: 8 servers, 8 x8 devices. 1 -> 2 x16 ports a server: 8 more adapters, and 64 + 256 lanes
    outgrow one 256-lane switch."""
    one, two = bill(load_scenario(RACK, [CXL]).resolved), bill(load_scenario(RACK, [CXL, "fabric.cxl.host_ports_per_node=2"]).resolved)
    changed = {item for item in one if one[item] != two[item]}
    assert changed == {"cxl_host_port", "cxl_switch"}
    assert cost(RACK, CXL, "fabric.cxl.host_ports_per_node=2") - cost(RACK, CXL) == pytest.approx(8 * 800 + 15_000)


def test_port_width_and_nic_speed_are_priced():
    # a x8 port (32 GB/s) is half an x16 adapter; 64 + 64 lanes still fit one switch
    assert cost(RACK, CXL, "fabric.cxl.host_port_bandwidth=32 GB/s") - cost(RACK, CXL) == pytest.approx(-8 * 400)
    # 64 NICs from 400 to 200 Gb/s: 2 units of 100 Gb/s fewer each
    assert cost(RACK, "fabric.nic.line_rate=200 Gb/s") - cost(RACK) == pytest.approx(-64 * 2 * 375)


def test_the_same_gpus_in_smaller_nodes_cost_more_servers_not_more_slots():
    """16 GPUs as 4 x 4-GPU or 2 x 8-GPU nodes: two more chassis; GPUs, slots and NICs the same."""
    base = CONFIGS / "plan/llama70b_fp8_h100_agg.yaml"
    small = bill(load_scenario(base).resolved)
    big = bill(load_scenario(base, ["cluster.nodes=2", "cluster.gpus_per_node=8", "cluster.nics_per_node=8"]).resolved)
    assert small["gpu_server"] == 4 and big["gpu_server"] == 2
    assert {k: v for k, v in small.items() if k != "gpu_server"} == {k: v for k, v in big.items() if k != "gpu_server"}
    assert cost(base) - cost(base, "cluster.nodes=2", "cluster.gpus_per_node=8", "cluster.nics_per_node=8") == 2 * 30_000
