"""`simcxl run --timeline`: a Chrome trace (Perfetto) of GPU iterations, KV transfers and request lifecycles."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest

from simcxl.cli import main
from simcxl.metrics.results import dump_json
from simcxl.metrics.timeline import Timeline
from simcxl.simulate import simulate

from .conftest import scenario


def strict_json(text: str) -> dict:
    def no_constant(name):
        raise ValueError(f"{name} is not valid JSON (Perfetto rejects it)")
    return json.loads(text, parse_constant=no_constant)


def record(name="rdma.yaml", *overrides, **window):
    timeline = Timeline(**window)
    outcome = simulate(scenario(name, *overrides), timeline=timeline)
    return outcome, strict_json(timeline.json())


def test_a_disaggregated_run_records_every_iteration_transfer_and_request():
    outcome, trace = record("rdma.yaml", "workload.num_requests=200")
    events = trace["traceEvents"]
    cluster = outcome.report.cluster
    kinds = Counter((e["ph"], e["name"]) for e in events if e["ph"] in "Xbe")
    assert kinds[("X", "decode")] == sum(len(w.iteration_ends) for w in cluster.decode)
    assert kinds[("X", "prefill")] > 0 and kinds[("b", "KV transfer")] == kinds[("e", "KV transfer")] == 200
    moved = sum(e["args"]["bytes"] for e in events if e["ph"] == "b" and e["name"] == "KV transfer")
    assert moved == pytest.approx(outcome.summary["kv"]["bytes_moved"]["rdma"])  # bytes conserved
    tracks = defaultdict(list)
    for e in events:
        if e["ph"] == "X":
            tracks[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    for spans in tracks.values():  # a GPU instance does one thing at a time
        assert all(b[0] >= a[1] - 1e-6 for a, b in zip(spans, spans[1:]))
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    ends = {e["id"]: e for e in events if e["ph"] == "f"}
    assert sorted(starts) == sorted(ends) == list(range(200))
    requests = outcome.report.requests.set_index("id")
    for rid, end in ends.items():  # each arrow lands inside the iteration that emitted the first token
        assert end["ts"] == pytest.approx(requests.first_token_s[rid] * 1e6 - 1e-3, abs=1e-6)
        assert any(s <= end["ts"] <= e for s, e in tracks[(end["pid"], end["tid"])])


def test_recording_a_timeline_changes_no_result():
    plain = simulate(scenario("rdma.yaml", "workload.num_requests=300"))
    traced, _ = record("rdma.yaml", "workload.num_requests=300")
    assert dump_json(traced.summary) == dump_json(plain.summary)


def test_a_window_and_an_event_cap_bound_the_file():
    _, trace = record("rdma.yaml", "workload.num_requests=600", start=10.0, end=11.0)
    timed = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert timed and all(e["ts"] + e["dur"] >= 10e6 and e["ts"] <= 11e6 for e in timed)
    assert trace["otherData"]["window"] == {"start_s": 10.0, "end_s": 11.0}
    _, capped = record("rdma.yaml", "workload.num_requests=300", max_events=500)
    assert len([e for e in capped["traceEvents"] if e["ph"] != "M"]) == 500
    assert capped["otherData"]["events_dropped"] > 0


def test_aggregated_iterations_and_sparse_step_fetches_are_on_the_timeline():
    outcome, trace = record("engine/vllm_llama-3.1-70b-fp8_h100.yaml", "workload.num_requests=40")
    iterations = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["name"] == "iteration"]
    assert len(iterations) == sum(len(w.iteration_ends) for w in outcome.report.cluster.aggregated)
    assert sum(e["args"]["prefill_tokens"] for e in iterations) == outcome.report.requests.input_tokens.sum()
    outcome, trace = record("sac.yaml", "workload.num_requests=30")
    fetched = sum(e["args"]["bytes"] for e in trace["traceEvents"] if e["ph"] == "b" and e["name"] == "step fetch")
    assert fetched == pytest.approx(outcome.summary["kv"]["bytes_moved"]["cxl_topk_fetch"])


def test_the_cli_writes_timeline_json_and_rejects_a_bad_window(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "rdma", "-q", "-o", str(out), "--timeline", "--set", "workload.num_requests=50"]) == 0
    assert strict_json((out / "timeline.json").read_text())["traceEvents"]
    assert main(["plot", str(out), "-o", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig/timeline_run.png").is_file()
    with pytest.raises(SystemExit) as exit_:
        main(["run", "rdma", "--timeline-window", "12:10"])
    assert exit_.value.code == 2 and "0 <= START < END" in capsys.readouterr().err
