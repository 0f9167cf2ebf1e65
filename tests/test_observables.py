"""The per-instance observables (instances.csv, the timeline's counter tracks) obey conservation laws on
configs/rdma.yaml, and MFU/MBU at a roofline corner equal the closed form."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from simcxl.hardware.gpu import GPUCompute
from simcxl.hardware.model import LLM
from simcxl.metrics.results import git_commit
from simcxl.metrics.timeline import Timeline
from simcxl.metrics.timeseries import INSTANCE_COLUMNS
from simcxl.simulate import simulate

from .conftest import ROOT, scenario


@pytest.fixture(scope="module")
def rdma():
    outcome = simulate(scenario("rdma.yaml"))
    cluster = outcome.report.cluster
    return outcome, cluster, pd.read_csv(io.StringIO(cluster.sampler.instances_csv()))


def test_columns_and_one_row_per_sample_and_instance(rdma):
    outcome, cluster, rows = rdma
    assert tuple(rows.columns) == INSTANCE_COLUMNS
    instances = len(cluster.prefill) + len(cluster.decode)
    assert len(rows) % instances == 0
    assert (rows.groupby("time_s").size() == instances).all()
    times = sorted(rows.time_s.unique())
    interval = cluster.scenario.run.sample_interval
    assert times[:-1] == pytest.approx([interval * (i + 1) for i in range(len(times) - 1)])
    assert times[-1] == pytest.approx(outcome.summary["sim"]["simulated_s"])  # the run's end: a last, partial window


def test_kv_blocks_never_exceed_capacity_and_return_to_zero(rdma):
    _, _, rows = rdma
    assert (rows.kv_blocks_used >= 0).all() and (rows.kv_blocks_used <= rows.kv_blocks_total).all()
    assert rows[rows.role == "decode"].kv_blocks_used.max() > 0
    end = rows[rows.time_s == rows.time_s.max()]
    assert (end.kv_blocks_used == 0).all() and (end.waiting == 0).all() and (end.running == 0).all()


def test_tokens_iterations_and_preemptions_add_up(rdma):
    outcome, cluster, rows = rdma
    requests = outcome.report.requests
    decode, prefill = rows[rows.role == "decode"], rows[rows.role == "prefill"]
    # every output token is one sequence's token in one decode iteration (none recomputed: no preemption here)
    assert outcome.summary["preemptions"]["count"] == rows.preemptions.sum() == 0
    assert decode.tokens.sum() == requests.output_tokens.sum()
    assert decode.iterations.sum() == sum(w.iteration for w in cluster.decode)
    assert prefill.tokens.sum() == (requests.input_tokens - requests.cached_tokens).sum()
    assert prefill.iterations.sum() == sum(w.batches for w in cluster.prefill)
    assert (rows.running <= rows.kv_blocks_used.where(rows.role == "decode", rows.running)).all()


def test_littles_law_for_the_prefill_queue(rdma):
    """Time-averaged queue length = arrival rate x mean time in the queue (within 2%; exact here, as every
    request arrived and left within the sampled time)."""
    outcome, cluster, rows = rdma
    requests = outcome.report.requests
    prefill = rows[rows.role == "prefill"].sort_values(["instance", "time_s"])
    window = prefill.groupby("instance").time_s.diff().fillna(prefill.time_s)
    horizon = rows.time_s.max()
    queue_length = (prefill.waiting_mean * window).sum() / horizon  # summed over the instances
    entry = requests.input_tokens.map(cluster.entry_latency)
    queued = requests.prefill_start_s - requests.arrival_s - entry
    rate = len(requests) / horizon
    assert queue_length > 0
    assert queue_length == pytest.approx(rate * queued.mean(), rel=0.02)
    assert outcome.summary["ttft_breakdown_s"]["queue"] == pytest.approx(queued.mean() + entry.mean(), rel=1e-9)


def test_busy_matches_timeseries(rdma):
    outcome, cluster, rows = rdma
    series = pd.read_csv(io.StringIO(cluster.sampler.csv()))
    decode = rows[(rows.role == "decode") & (rows.time_s <= series.time_s.max())]
    mean_busy = decode.groupby("time_s").busy.mean().to_numpy()
    assert mean_busy == pytest.approx(series["gpu.decode"].to_numpy(), rel=1e-9, abs=1e-12)
    assert ((rows.mfu >= 0) & (rows.mfu <= 1) & (rows.mbu >= 0) & (rows.mbu <= 1.01)).all()


def _corner(**gpu):
    loaded = scenario("rdma.yaml", *(f"gpu.{key}={value}" for key, value in gpu.items()))
    return GPUCompute(loaded.scenario.gpu, LLM(loaded.scenario.model))


def test_mbu_at_the_memory_corner_is_the_memory_efficiency():
    """Decode at small batch reads weights, KV and activations at the memory-bound roofline: with no fixed
    cost per layer and one efficiency for every kind of byte, bytes / time / peak bandwidth is that efficiency."""
    compute = _corner(layer_overhead=0, memory_efficiency=0.8, attention_memory_efficiency=0.8,
                      elementwise_efficiency=0.8)
    for batch, context in [(1, 1024), (8, 8 * 4096), (32, 32 * 2000)]:
        seconds = compute.decode_step_time(batch, context)
        flops, nbytes = compute.decode_work(batch, context, context)
        assert nbytes / seconds / compute.peak_bandwidth == pytest.approx(0.8, rel=1e-12)
        assert flops / seconds / compute.peak_flops < 0.1
        llm = compute.llm  # the closed form: weights + KV + per-layer activation traffic, in bytes
        activations = llm.layers * batch * (llm.replicated_activation_bytes + llm.sharded_activation_bytes)
        assert nbytes == pytest.approx(llm.decode_weight_bytes(batch) + context * llm.kv_bytes_per_token + activations,
                                       rel=1e-12)
    # a stretch of iterations sums the iterations' work
    parts = [compute.decode_work(8, 1000 + 8 * i, 1000 + 8 * i) for i in range(5)]
    whole = compute.decode_work(8, 5 * 1000 + 8 * 10, 5 * 1000 + 8 * 10, count=5)
    assert whole == pytest.approx(tuple(map(sum, zip(*parts))), rel=1e-12)
    counts = [0] * 9
    counts[8] = 5
    assert compute.decode_work_totals(counts, 5 * 1000 + 8 * 10, 5 * 1000 + 8 * 10) == pytest.approx(whole, rel=1e-12)


def test_mfu_at_the_compute_corner_is_the_compute_efficiency():
    """A long prompt's prefill is FLOP-bound in its GEMMs and its attention: with one efficiency for both and
    elementwise traffic made free, FLOPs / time / peak is that efficiency; the FLOPs are 2 x active parameters
    per token (less the LM head for all but the last) plus 4 x heads x head_dim x layers per (query, key) pair."""
    compute = _corner(layer_overhead=0, compute_efficiency=0.5, attention_efficiency=0.5,
                      elementwise_efficiency=1.0)
    compute.roofline = type(compute.roofline)(**{**compute.roofline.__dict__, "elementwise_bandwidth": 1e30})
    compute._priced_prefills.cache_clear()
    llm = compute.llm
    for tokens in (4096, 16384):
        seconds = compute.prefill_time([tokens])
        flops, _ = compute.prefill_work([tokens])
        spec = llm.spec
        closed = (2.0 * llm.active_params * tokens - (tokens - 1) * llm.lm_head_flops_per_token
                  + 4.0 * spec.heads * spec.head_dim * spec.layers * tokens * (tokens + 1) / 2)
        assert flops == pytest.approx(closed, rel=1e-12)
        assert flops / seconds / compute.peak_flops == pytest.approx(0.5, rel=1e-9)


def test_mbu_end_to_end_at_the_memory_corner():
    """On the decode instances of a run at the memory corner each window's MBU is 0.8 x its busy fraction:
    the work and the busy time of an iteration are credited together."""
    outcome = simulate(scenario("rdma.yaml", "workload.num_requests=300", "gpu.layer_overhead=0",
                                "gpu.memory_efficiency=0.8", "gpu.attention_memory_efficiency=0.8",
                                "gpu.fused_layer_overhead=0", "gpu.fused_elementwise_efficiency=0.8",
                                "serving.iteration_overhead=0"))
    assert outcome.report.cluster.scenario.serving.execution == "fused"
    cluster = outcome.report.cluster
    assert cluster.scenario.serving.step_cpu.total == 0
    rows = pd.read_csv(io.StringIO(cluster.sampler.instances_csv()))
    decode = rows[(rows.role == "decode") & (rows.busy > 0)]
    assert len(decode) > 10
    assert decode.mbu.to_numpy() == pytest.approx(0.8 * decode.busy.to_numpy(), rel=1e-9)


def test_counter_tracks_on_the_timeline():
    timeline = Timeline()
    outcome = simulate(scenario("rdma.yaml", "workload.num_requests=100"), timeline=timeline)
    trace = json.loads(timeline.json())
    counters = [e for e in trace["traceEvents"] if e["ph"] == "C"]
    names = {e["name"] for e in counters}
    assert {"instance 0: KV blocks in use", "instance 0: MFU", "instance 0: MBU", "instance 0: waiting",
            "instance 0: running", "instance 0: tokens per iteration", "link.nic utilization"} <= names
    samples = len(set(outcome.report.cluster.sampler.instance_rows[i][0]
                      for i in range(len(outcome.report.cluster.sampler.instance_rows))))
    kv = [e for e in counters if e["name"] == "instance 0: KV blocks in use"]
    assert len(kv) == 2 * samples  # a prefill and a decode instance 0, each its own process's track
    assert all(isinstance(e["args"]["value"], (int, float)) for e in counters)


def test_run_json_records_version_commit_and_interpreter(tmp_path):
    import sys

    from simcxl.version import __version__

    outcome = simulate(scenario("rdma.yaml", "workload.num_requests=20"))
    outcome.write(tmp_path, scenario("rdma.yaml", "workload.num_requests=20"))
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["simcxl"] == __version__ and run["interpreter"] == sys.executable
    if (ROOT / ".git").exists():
        assert run["git_commit"] == git_commit() and len(run["git_commit"]) == 40
    assert (tmp_path / "instances.csv").is_file()


def test_git_commit_reads_worktrees_and_packed_refs(tmp_path):
    sha = "0123456789abcdef0123456789abcdef01234567"
    main = tmp_path / "repo" / ".git"
    (main / "worktrees" / "w").mkdir(parents=True)
    (main / "HEAD").write_text("ref: refs/heads/main\n")
    (main / "packed-refs").write_text(f"# pack-refs with: peeled\n{sha} refs/heads/main\n")
    assert git_commit(tmp_path / "repo") == sha
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / ".git").write_text(f"gitdir: {main / 'worktrees' / 'w'}\n")
    (main / "worktrees" / "w" / "HEAD").write_text("ref: refs/heads/main\n")
    (main / "worktrees" / "w" / "commondir").write_text("../..\n")
    assert git_commit(tree) == sha
    (main / "worktrees" / "w" / "HEAD").write_text(sha[::-1] + "\n")
    assert git_commit(tree) == sha[::-1]
    outside = tmp_path / "none"
    outside.mkdir()
    assert git_commit(outside) is None  # no .git above a temporary folder


def test_instance_summary_means_and_peaks(rdma):
    _, cluster, rows = rdma
    summary = cluster.sampler.instance_summary()
    assert set(summary) == {"prefill", "decode"}
    decode = rows[rows.role == "decode"]
    assert summary["decode"]["running"]["max"] == decode.running.max()
    assert summary["decode"]["kv_used_fraction"]["max"] == pytest.approx((decode.kv_blocks_used
                                                                          / decode.kv_blocks_total).max())
    assert summary["decode"]["tokens_per_iteration"]["mean"] == pytest.approx(decode.tokens.sum()
                                                                              / decode.iterations.sum())
    flops = sum(w.work_done[0] for w in cluster.decode)  # time-weighted MFU: all the work over all the time
    horizon = rows.time_s.max()
    assert summary["decode"]["mfu"]["mean"] == pytest.approx(
        flops / horizon / cluster.compute.peak_flops / len(cluster.decode), rel=1e-9)


def test_plot_draws_the_instance_series(tmp_path):
    from simcxl.metrics.plots import plot

    loaded = scenario("rdma.yaml", "workload.num_requests=40")
    simulate(loaded).write(tmp_path / "run", loaded)
    written = plot([tmp_path / "run"], tmp_path / "fig")
    assert tmp_path / "fig" / "instances_run.png" in written and (tmp_path / "fig" / "instances_run.pdf").is_file()
