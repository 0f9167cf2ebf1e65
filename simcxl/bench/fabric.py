"""``simcxl bench fabric``: characterize every data path of a hardware profile, as the papers do.

For each path (cache-line loads and DMA to the CXL pool, RDMA READ and WRITE, PCIe copies) and item
sizes from 64 B to 64 MiB, it measures the effective bandwidth of a stream of items and the latency
of one item alone; then a contention sweep runs 1..32 concurrent readers on one CXL device, one
host's CXL port and one NIC. Everything is simulated with the same Fabric the serving runs use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generator

import simpy

from simcxl.config.schema import FabricSpec
from simcxl.fabric.fabric import Fabric

KiB, MiB = 1024, 1024 * 1024
ITEM_SIZES = tuple(64 * 4**i for i in range(11))  # 64 B, 256 B, ... 64 MiB
CONCURRENCY = (1, 2, 4, 8, 16, 32)
STREAM_BYTES = 64 * MiB
PATHS = ("cxl_load", "cxl_dma", "rdma_read", "rdma_write", "pcie_h2d", "pcie_d2h")
SEQUENTIAL = ("cxl_dma", "pcie_h2d", "pcie_d2h")  # one copy call after another: each item costs events
MAX_ITEMS = {"sequential": 1024, "stream": 1 << 20}
COLUMNS = ("path", "item_bytes", "items", "concurrency", "seconds", "gbps", "latency_s")


@dataclass(frozen=True)
class Row:
    path: str
    item_bytes: int
    items: int
    concurrency: int
    seconds: float
    latency_s: float

    @property
    def gbps(self) -> float:
        """Effective GB/s (decimal) per requester."""
        return self.items * self.item_bytes / self.seconds / 1e9

    @property
    def items_per_s(self) -> float:
        return self.items / self.seconds

    def csv(self) -> str:
        return (f"{self.path},{self.item_bytes},{self.items},{self.concurrency},{self.seconds!r},{self.gbps!r},"
                f"{self.latency_s!r}")


def _sequential(issue: Callable[[], simpy.Event], items: int) -> Generator:
    """Copies issued one after another by a single stream, as cudaMemcpy calls are."""
    for _ in range(items):
        yield issue()


def _operations(fabric: Fabric) -> dict[str, Callable[[int, int], simpy.Event]]:
    """path -> f(items, item_bytes) starting that many items from GPU 0 of node 0 (node 1 is remote)."""
    env, local, remote = fabric.network.env, fabric.topology.nodes[0][0], fabric.topology.nodes[1][0]
    ops = {
        "rdma_read": lambda n, size: fabric.rdma.read(local, remote, n, size),
        "rdma_write": lambda n, size: fabric.rdma.write(local, remote, n * size, message_bytes=size),
        "pcie_h2d": lambda n, size: env.process(_sequential(lambda: fabric.pcie.copy(local, size, True), n)),
        "pcie_d2h": lambda n, size: env.process(_sequential(lambda: fabric.pcie.copy(local, size, False), n)),
    }
    if fabric.cxl is not None:
        ops["cxl_load"] = lambda n, size: fabric.cxl.load(local, n, size)
        ops["cxl_dma"] = lambda n, size: env.process(_sequential(lambda: fabric.cxl.dma(local, size, write=False), n))
    return ops


def _timed(spec: FabricSpec, path: str, items: int, item_bytes: int, nodes: int = 2) -> float:
    env = simpy.Environment()
    fabric = Fabric(env, spec, nodes=nodes, gpus_per_node=1)
    done = _operations(fabric)[path](items, item_bytes)
    env.run(until=done)
    return env.now


def item_sweep(spec: FabricSpec) -> list[Row]:
    rows = []
    for path in PATHS:
        if path.startswith("cxl") and spec.cxl is None:
            continue
        for size in ITEM_SIZES:
            cap = MAX_ITEMS["sequential" if path in SEQUENTIAL else "stream"]
            items = max(1, min(cap, STREAM_BYTES // size))
            rows.append(Row(path, size, items, 1, _timed(spec, path, items, size), _timed(spec, path, 1, size)))
    return rows


def _contended(spec: FabricSpec, resource: str, readers: int, nbytes: int) -> float:
    """Seconds until every one of ``readers`` has read ``nbytes`` through the shared ``resource``."""
    env = simpy.Environment()
    if resource == "cxl_device":  # readers on separate nodes, all reading one device (no interleaving)
        fabric = Fabric(env, spec.model_copy(update={"cxl": spec.cxl.model_copy(update={"interleave": False})}),
                        nodes=readers, gpus_per_node=1)
        events = [fabric.cxl.dma(node[0], nbytes, write=False, key=0) for node in fabric.topology.nodes]
    elif resource == "cxl_port":  # readers are GPUs of one node sharing its CXL host port
        fabric = Fabric(env, spec, nodes=1, gpus_per_node=readers)
        events = [fabric.cxl.dma(gpu, nbytes, write=False) for gpu in fabric.topology.nodes[0]]
    else:  # readers are GPUs of one node sharing its one NIC, each reading from a GPU of its own remote node
        fabric = Fabric(env, spec, nodes=readers + 1, gpus_per_node=readers, nics_per_node=1)
        nodes = fabric.topology.nodes
        events = [fabric.rdma.read(nodes[0][i], nodes[i + 1][0], 1, nbytes) for i in range(readers)]
    env.run(until=env.all_of(events))
    return env.now


def contention_sweep(spec: FabricSpec, nbytes: int = 64 * MiB) -> list[Row]:
    resources = ("cxl_device", "cxl_port", "nic") if spec.cxl is not None else ("nic",)
    rows = []
    for resource in resources:
        for readers in CONCURRENCY:
            seconds = _contended(spec, resource, readers, nbytes)
            rows.append(Row(f"contention_{resource}", nbytes, 1, readers, seconds, seconds))
    return rows


def crossover_bytes(rows: list[Row], path: str = "rdma_read", fraction: float = 0.9) -> int | None:
    """Smallest item size at which ``path`` reaches ``fraction`` of its best bandwidth."""
    series = [r for r in rows if r.path == path]
    if not series:
        return None
    best = max(r.gbps for r in series)
    return min(r.item_bytes for r in series if r.gbps >= fraction * best)


def csv_text(rows: list[Row]) -> str:
    return "\n".join([",".join(COLUMNS)] + [row.csv() for row in rows]) + "\n"


@dataclass(frozen=True)
class Check:
    """A published figure the profile is meant to reproduce, and what the simulator gives."""

    name: str
    simulated: float
    low: float
    high: float
    unit: str
    source: str

    @property
    def ok(self) -> bool:
        """Within 10% of the published value (or of the published range's ends)."""
        return 0.9 * self.low <= self.simulated <= 1.1 * self.high

    def line(self) -> str:
        published = f"{self.low:g}" if self.low == self.high else f"{self.low:g}-{self.high:g}"
        verdict = "ok" if self.ok else "OFF BY MORE THAN 10%"
        return f"{self.name}: simulated {self.simulated:.4g} {self.unit}, published {published} {self.unit} " \
               f"({self.source}): {verdict}"


def _row(rows: list[Row], path: str, item_bytes: int | None = None, concurrency: int = 1) -> Row:
    return next(r for r in rows if r.path == path and r.concurrency == concurrency
                and (item_bytes is None or r.item_bytes == item_bytes))


def _cpu_load_latency(spec: FabricSpec, hops: int) -> float:
    env = simpy.Environment()
    fabric = Fabric(env, spec.model_copy(update={"cxl": spec.cxl.model_copy(update={"switch_hops": hops})}), 1, 1)
    env.run(until=fabric.cxl.load(fabric.topology.nodes[0][0], 1, 64, from_gpu=False))
    return env.now


def reference_checks(spec: FabricSpec, rows: list[Row]) -> list[Check]:
    """The published points of validation/reference/hardware.md that a rack profile should reproduce."""
    checks = [
        Check("RDMA bandwidth, 64 MiB READs", _row(rows, "rdma_read", 64 * MiB).gbps, 50, 50, "GB/s",
              "400 Gb/s ConnectX-7 line rate"),
        Check("RDMA small-message rate, 64 B WRITEs", _row(rows, "rdma_write", 64).items_per_s / 1e6, 100, 200,
              "M msg/s", "hardware.md: 100-200 M msg/s per NIC"),
        Check("PCIe copy bandwidth, 64 MiB", _row(rows, "pcie_h2d", 64 * MiB).gbps, 51.5, 55, "GB/s",
              "h100_pcie_copies.csv: 51.5 GB/s at 16 MiB, 55 GB/s at 256 MiB"),
        Check("PCIe copy bandwidth, 1 MiB", _row(rows, "pcie_h2d", MiB).gbps, 38, 38, "GB/s",
              "hardware.md / h100_pcie_copies.csv"),
        Check("PCIe copy bandwidth, 64 KiB", _row(rows, "pcie_h2d", 64 * KiB).gbps, 4, 4, "GB/s",
              "hardware.md / h100_pcie_copies.csv"),
        Check("PCIe copy time, 4 KiB", _row(rows, "pcie_h2d", 4 * KiB).latency_s * 1e6, 16, 16, "us",
              "hardware.md: ~16 us fixed cost per copy"),
    ]
    if spec.cxl is not None:
        checks += [
            Check("CXL load latency, direct attach (CPU)", _cpu_load_latency(spec, 0) * 1e9, 200, 400, "ns",
                  "hardware.md: ~200-400 ns (MICRO'23, Pond)"),
            Check("CXL load latency, one switch hop (CPU)", _cpu_load_latency(spec, 1) * 1e9, 400, 900, "ns",
                  "hardware.md: direct + 100-250 ns each way"),
            Check("CXL x8 device bandwidth, one reader", _row(rows, "contention_cxl_device").gbps, 32, 32, "GB/s",
                  "hardware.md: x8 Gen5 ~32 GB/s raw"),
            Check("CXL x16 host port bandwidth, 32 readers", 32 * _row(rows, "contention_cxl_port", concurrency=32).gbps,
                  64, 64, "GB/s", "hardware.md: x16 Gen5 ~64 GB/s raw"),
        ]
    return checks


def plot(rows: list[Row], path: Path) -> None:
    """Bandwidth against item size per path, and per-reader bandwidth under contention. Paths that coincide
    (the PCIe directions, the RDMA verbs past 4 KiB) get distinct markers and line styles, drawn from large and
    hollow to small and filled, so that a later path's markers sit inside an earlier one's and none hides another."""
    from simcxl.metrics.plots import legend_outside, series_style, use_style

    plt = use_style()
    fig, (sizes, contention) = plt.subplots(1, 2, figsize=(11, 3.8))
    drawn = [name for name in PATHS if any(r.path == name for r in rows)]
    for i, name in enumerate(drawn):
        series = [r for r in rows if r.path == name]
        sizes.loglog([r.item_bytes for r in series], [r.gbps for r in series], label=name,
                     **{**series_style(i), "markersize": 9 - i, "linewidth": 2.2 - 0.25 * i,
                        "markerfacecolor": "none" if i < len(drawn) - 1 else None})
    sizes.set_xlabel("item size (bytes)")
    sizes.set_ylabel("effective bandwidth (GB/s)")
    sizes.set_title("one requester, stream of items")
    sizes.grid(True, which="both", alpha=0.3)
    legend_outside(sizes)
    for i, name in enumerate(sorted({r.path for r in rows if r.path.startswith("contention_")})):
        series = [r for r in rows if r.path == name]
        contention.loglog([r.concurrency for r in series], [r.gbps for r in series],
                          label=name.removeprefix("contention_").replace("_", " "), base=2, **series_style(i))
    contention.set_xlabel("concurrent readers (count)")
    contention.set_ylabel("bandwidth per reader (GB/s)")
    contention.set_title("contention on one shared resource (64 MiB reads)")
    contention.grid(True, which="both", alpha=0.3)
    legend_outside(contention)
    fig.savefig(path)
    plt.close(fig)
