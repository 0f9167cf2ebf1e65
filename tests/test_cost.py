"""Capital cost of a simulated rack: the bill counts what the scenario builds and only what its design uses."""

from __future__ import annotations

import pytest

from simcxl.config.loader import load_scenario
from simcxl.metrics.cost import CostTable, bill, capital_cost

from .conftest import ROOT

RACK = ROOT / "experiments/rack/rack.yaml"


def test_a_cxl_pool_design_pays_for_the_switch_devices_and_their_dram_and_nothing_else_does():
    cxl = bill(load_scenario(RACK, ["kv_manager={type: cxl_block, prefix_cache: {}}"]).resolved)
    assert cxl == {"gpu": 64, "gpu_server": 8, "gpu_slot": 64, "nic": 64, "nic_100gbps": 64 * 4, "cxl_switch": 1,
                   "cxl_host_port": 8, "cxl_device": 8, "dram_gb": pytest.approx(8 * 256 * 2**30 / 1e9)}
    prices = CostTable(gpu=30_000, gpu_server=50_000, gpu_slot=0, nic=2_000, nic_100gbps=0, cxl_switch=10_000,
                       cxl_host_port=500, cxl_device=1_000, dram_per_gb=4)
    assert capital_cost(cxl, prices) == pytest.approx(64 * 30_000 + 8 * 50_000 + 64 * 2_000 + 10_000 + 8 * 500
                                                      + 8 * 1_000 + 4 * 8 * 256 * 2**30 / 1e9)
    push = bill(load_scenario(RACK, ["kv_manager={type: rdma}"]).resolved)
    # the rack has a pool, but push does not use it
    assert push == {"gpu": 64, "gpu_server": 8, "gpu_slot": 64, "nic": 64, "nic_100gbps": 64 * 4}
    pool = bill(load_scenario(RACK, ["kv_manager={type: rdma_pool, prefix_cache: {}}"]).resolved)
    assert pool["memory_server"] == 1 and pool["nic"] == 64 + 2 and pool["dram_gb"] == pytest.approx(2 * 2**40 / 1e9)


def test_a_price_must_be_known_and_not_negative():
    with pytest.raises(ValueError):
        CostTable(gpu=-1)
    with pytest.raises(ValueError):
        CostTable(tpu=1)


@pytest.mark.parametrize("ports, switches", [(1, 1), (2, 2), (4, 3)])
def test_host_ports_are_billed_and_lanes_beyond_one_switch_need_another(ports, switches):
    """8 x8 devices (64 lanes) + 8 servers x ports x16: 192 lanes fit one 256-lane XC50256, 320 need two."""
    cxl = bill(load_scenario(RACK, ["kv_manager={type: cxl_block, prefix_cache: {}}",
                                    f"fabric.cxl.host_ports_per_node={ports}"]).resolved)
    assert cxl["cxl_host_port"] == 8 * ports
    assert cxl["cxl_switch"] == switches == -(-(64 + 8 * ports * 16) // 256)
