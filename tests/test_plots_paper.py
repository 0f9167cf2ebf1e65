"""Figures fit for a paper: every axis of every figure the plotting module draws names its unit, run legends
name what differs (never a point id), 95% intervals are drawn where a table has them, labels do not overprint."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator

from simcxl.cli import main
from simcxl.metrics import plots
from simcxl.sweep.executors import LocalExecutor
from simcxl.sweep.runner import run_sweep
from simcxl.sweep.spec import load_sweep

from .conftest import ROOT

UNIT = re.compile(r"\(.+\)")


@pytest.fixture
def figures(monkeypatch):
    """Every figure saved while the test runs (Figure.savefig recorded, then done as usual)."""
    saved: list[Figure] = []
    original = Figure.savefig

    def record(self, *args, **kwargs):
        if self not in saved:
            saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return saved


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A 2 x 2 sweep (offered load x prefill nodes) of 60 requests a point, and its point folders."""
    tmp = tmp_path_factory.mktemp("sweep")
    spec = tmp / "spec.yaml"
    spec.write_text(f"base: {ROOT / 'configs/rdma.yaml'}\n"
                    "grid: {workload.rate: [8, 16], cluster.prefill_nodes: [1, 2]}\n"
                    "points: [{workload.num_requests: 60}]\n")
    run_sweep(load_sweep(spec), tmp / "sweep", LocalExecutor(1))
    return tmp / "sweep"


def unlabelled_axes(fig: Figure) -> list[str]:
    """The axes of ``fig`` whose x or y label is empty or has no unit in parentheses; an axis whose ticks are
    named categories (bars per system, timeline tracks) needs none."""
    bad = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for name, axis, text in (("x", ax.xaxis, ax.get_xlabel()), ("y", ax.yaxis, ax.get_ylabel())):
            if isinstance(axis.get_major_locator(), FixedLocator) and all(t.get_text() for t in axis.get_ticklabels()):
                continue
            if not UNIT.search(text):
                bad.append(f"{ax.get_title()!r} {name}: {text!r}")
    return bad


def test_every_figure_of_plot_has_units_on_its_axes(tmp_path, sweep, figures):
    run = tmp_path / "rdma"
    assert main(["run", "configs/rdma.yaml", "--set", "workload.num_requests=60", "--timeline", "-o", str(run)]) == 0
    points = sorted((sweep / "points").iterdir())[:2]
    written = plots.plot([sweep, run, *points], tmp_path / "fig")
    names = {p.stem for p in written}
    assert {"sweep", "ttft_cdf", "ttft_breakdown", "utilization", "utilization_over_time", "instances_rdma",
            "timeline_rdma"} <= names
    assert len(figures) == len(written) // 2 == 9  # each as PNG and PDF; the two points' instances too
    for fig in figures:
        assert unlabelled_axes(fig) == [], fig.axes[0].get_title()


def test_reproduction_and_fabric_figures_have_units(tmp_path, figures):
    rows = [dict(scenario=name, rate=rate, ttft_mean_s=0.05 * rate * k, ttft_p99_s=0.2 * rate * k,
                 throughput_rps=rate / k, **{part: 0.01 * k for part in plots.BREAKDOWN_PARTS})
            for k, name in ((1, "tract"), (2, "tract_rdma")) for rate in (4.0, 8.0)]
    plots.plot_rate_sweep(rows, tmp_path / "rate.png", plots.label("workload.rate"))
    plots.plot_rate_breakdown(rows, 8.0, tmp_path / "breakdown.png", plots.label("workload.rate"))
    main(["bench", "fabric", "-o", str(tmp_path / "fabric")])  # exit 1 would only say a check is off
    assert len(figures) == 3
    for fig in figures:
        assert unlabelled_axes(fig) == []
    rate_fig, breakdown_fig, fabric_fig = figures
    assert [t.get_text() for t in rate_fig.legends[0].texts] == ["TraCT (CXL)", "RDMA (NIXL)"]
    assert breakdown_fig.axes[0].get_ylabel() == "mean TTFT (ms)"  # the largest total is 0.14 s: shown in ms
    styles = [(line.get_marker(), line.get_linestyle()) for line in fabric_fig.axes[0].lines]
    assert len(styles) == len(set(styles)) >= 6  # no data path drawn like another (two pairs coincide)


def test_run_legends_name_the_swept_values_not_point_ids(tmp_path, sweep, figures):
    points = sorted((sweep / "points").iterdir())
    plots.plot_runs(points, tmp_path)
    cdf = figures[0].axes[0]
    texts = [t.get_text() for t in cdf.get_legend().texts]
    table = pd.read_csv(sweep / "sweep.csv")
    expected = [f"offered load {r} req/s, prefill nodes {n}"
                for r, n in zip(table["workload.rate"], table["cluster.prefill_nodes"])]
    assert texts == expected
    assert not any(plots.POINT_ID.search(t) for t in texts)
    assert [t.get_text() for t in figures[1].axes[0].get_xticklabels()] == expected


def test_a_sweep_with_intervals_draws_them(tmp_path, sweep, figures):
    table = pd.read_csv(sweep / "sweep.csv")
    table["ttft_s.mean_ci95_low"] = table["ttft_s.mean"] * 0.8
    table["ttft_s.mean_ci95_high"] = table["ttft_s.mean"] * 1.5
    folder = tmp_path / "replicated"
    folder.mkdir()
    table.to_csv(folder / "sweep.csv", index=False)
    plots.plot_sweep(folder, tmp_path / "fig")
    ttft = figures[0].axes[0]
    bars = [c for c in ttft.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 2  # one per prefill-node count; TBT and throughput have no interval columns
    assert not [c for c in figures[0].axes[1].containers if isinstance(c, ErrorbarContainer)]
    drawn = sorted(v for c in bars for seg in c.lines[2][0].get_segments() for v in seg[:, 1])
    want = sorted([*(table["ttft_s.mean_ci95_low"] * 1e3), *(table["ttft_s.mean_ci95_high"] * 1e3)])
    assert drawn == pytest.approx(want, rel=1e-9)


def test_point_labels_do_not_overprint():
    plt = plots.use_style()
    fig, ax = plt.subplots()
    ax.scatter([1, 1, 1, 1, 2], [1, 1, 1, 1, 2])
    artists = plots.label_points(ax, [1, 1, 1, 1, 2], [1, 1, 1, 1, 2], ["0001", "0002", "0003", "0004", "0005"])
    fig.draw_without_rendering()
    boxes = [a.get_window_extent() for a in artists]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    plt.close(fig)


def test_the_style_ships_with_the_package_and_keys_have_units():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "*.mplstyle" in config["tool"]["setuptools"]["package-data"]["simcxl.metrics"]
    assert plots.STYLE.is_file() and plots.STYLE.parent == Path(plots.__file__).parent
    plots.use_style()
    assert matplotlib.rcParams["font.size"] == 9 and matplotlib.rcParams["savefig.bbox"] == "tight"
    assert all(UNIT.search(text) for key, text in plots.LABELS.items() if "." in key)
    assert plots.label("cxl_sparse") == "SAC (CXL, sparse)"
    assert UNIT.search(plots.label("serving.unknown_knob"))
