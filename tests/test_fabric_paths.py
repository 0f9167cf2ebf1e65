"""The data paths of the bundled rack profile against published figures and closed forms."""

from __future__ import annotations

import pytest
import simpy

from simcxl.bench import fabric as bench
from simcxl.cli import main
from simcxl.config.loader import load_profile
from simcxl.config.schema import FabricSpec
from simcxl.fabric.fabric import Fabric

from .conftest import CONFIGS

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def spec() -> FabricSpec:
    return load_profile(CONFIGS / "hardware/rack_cxl_pool.yaml", "fabric", FabricSpec)


@pytest.fixture(scope="module")
def rows(spec):
    return bench.item_sweep(spec) + bench.contention_sweep(spec)


def test_every_published_point_is_reproduced_within_10_percent(spec, rows):
    checks = bench.reference_checks(spec, rows)
    assert len(checks) == 10
    for check in checks:
        assert check.ok, check.line()


def test_small_items_favour_cache_line_loads_and_large_items_are_bandwidth_bound(spec, rows):
    def row(path, size):
        return next(r for r in rows if r.path == path and r.item_bytes == size)

    # 64 B: the NIC read credits (64 per 5 us round trip) cap RDMA; a GPU keeps hundreds of CXL lines in flight
    assert row("cxl_load", 64).items_per_s > 10 * row("rdma_read", 64).items_per_s
    assert row("rdma_read", 64).items_per_s == pytest.approx(64 / 5e-6, rel=0.01)
    # 16 MiB: both at their bandwidth ceilings (loads: lines in flight x 64 B per 1.5 us round trip, under the
    # x16 port's 60 GB/s; RDMA: the NIC)
    assert row("rdma_read", 16 * MiB).gbps == pytest.approx(48.5, rel=0.01)
    in_flight = spec.cxl.gpu_outstanding_loads * 64 / 1.5e-6 / 1e9
    assert in_flight < spec.cxl.host_port_bandwidth * spec.cxl.link_efficiency / 1e9
    assert row("cxl_load", 16 * MiB).gbps == pytest.approx(in_flight, rel=0.01)
    assert bench.crossover_bytes(rows) == 4096


@pytest.mark.parametrize("resource", ["contention_cxl_device", "contention_cxl_port", "contention_nic"])
def test_k_readers_on_one_bottleneck_each_get_one_kth(rows, resource):
    series = {r.concurrency: r.gbps for r in rows if r.path == resource}
    for k in (4, 8, 16, 32):  # from 4 readers on, the shared resource (not each reader's PCIe) limits
        assert series[k] == pytest.approx(series[32] * 32 / k, rel=0.01)


def test_cxl_dma_is_striped_over_devices_and_loads_pay_the_switch(spec):
    env = simpy.Environment()
    fabric = Fabric(env, spec, nodes=1, gpus_per_node=1)
    assert fabric.cxl.load_latency(from_gpu=False) == pytest.approx(250e-9 + 2 * 125e-9)
    assert fabric.cxl.load_latency(from_gpu=True) == pytest.approx(500e-9 + 2 * 0.5e-6)
    done = fabric.cxl.dma(fabric.topology.nodes[0][0], 800 * MiB, write=True)
    env.run(until=done)
    assert all(d.link_in.carried == pytest.approx(100 * MiB) for d in fabric.cxl.devices)
    assert fabric.cxl.lock_time() == pytest.approx(2 * 500e-9)
    assert fabric.cxl.flush_time(64 * 16) == pytest.approx(500e-9)       # 16 lines: one round of 16 in flight
    assert fabric.cxl.flush_time(64 * 17) == pytest.approx(2 * 500e-9)


def test_host_staged_rdma_adds_two_pcie_copies(spec):
    def write_time(gpudirect: bool) -> float:
        env = simpy.Environment()
        nic = spec.nic.model_copy(update={"gpudirect": gpudirect})
        fabric = Fabric(env, spec.model_copy(update={"nic": nic}), nodes=2, gpus_per_node=1)
        env.run(until=fabric.rdma.write(fabric.topology.nodes[0][0], fabric.topology.nodes[1][0], 64 * MiB))
        return env.now

    copy = 8e-6 + 64 * MiB / 55e9
    assert write_time(False) - write_time(True) == pytest.approx(2 * copy, rel=0.02)


def test_bench_fabric_cli_writes_csv_and_plot(tmp_path):
    assert main(["bench", "fabric", "-o", str(tmp_path)]) == 0
    lines = (tmp_path / "fabric.csv").read_text().splitlines()
    assert lines[0] == "path,item_bytes,items,concurrency,seconds,gbps,latency_s"
    assert len(lines) == 1 + 6 * 11 + 3 * 6
    assert (tmp_path / "fabric.png").stat().st_size > 10_000


def test_bench_fabric_rejects_a_profile_without_fabric(tmp_path, capsys):
    assert main(["bench", "fabric", "--hardware", str(CONFIGS / "hardware/h100_sxm.yaml"), "-o", str(tmp_path)]) == 2
    assert "h100_sxm.yaml: fabric: missing" in capsys.readouterr().err
