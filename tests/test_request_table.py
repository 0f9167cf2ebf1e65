"""The request table built a block at a time while the run goes on, and streamed into the results folder."""

from __future__ import annotations

import errno
import json
import os

import pandas as pd
import pytest

from simcxl.cli import main
from simcxl.metrics import request_log
from simcxl.metrics.request_table import RequestTable
from simcxl.simulate import simulate

from .conftest import ROOT, scenario

# preemptions (a small HBM at a high rate) and requests still running when the simulated time runs out
BUSY = ("workload.num_requests=400", "workload.rate=60", "gpu.hbm_capacity=24 GB", "run.max_simulated_time=12 s")


def test_a_table_streamed_block_by_block_is_the_table_written_at_the_end(tmp_path, monkeypatch):
    """Blocks of 32 requests are handed over as they finish: the files are those a run writing its table at
    the end gives, byte for byte, and the CSV and summary are those of 65,536-request blocks."""
    loaded = scenario("rdma.yaml", *BUSY)
    default = simulate(loaded, output=tmp_path / "default")
    monkeypatch.setattr(request_log, "BLOCK_BITS", 5)
    handed, block_recorded = [], RequestTable.block_recorded

    def record_time(self, block):
        handed.append(self.cluster.env.now)
        block_recorded(self, block)

    monkeypatch.setattr(RequestTable, "block_recorded", record_time)
    streamed = simulate(loaded, output=tmp_path / "streamed")
    at_end = simulate(loaded)
    at_end.write(tmp_path / "at_end", loaded)

    assert streamed.summary["preemptions"]["count"] > 0 and streamed.summary["requests"]["unfinished"] > 0
    assert 5 <= sum(t < streamed.report.simulated_s for t in handed) < request_log.blocks(400)  # not the last
    for name in ("requests.csv", "requests.parquet", "summary.json"):
        assert (tmp_path / "streamed" / name).read_bytes() == (tmp_path / "at_end" / name).read_bytes(), name
    for name in ("requests.csv", "summary.json"):
        assert (tmp_path / "streamed" / name).read_bytes() == (tmp_path / "default" / name).read_bytes(), name
    streamed_rows = pd.read_parquet(tmp_path / "streamed" / "requests.parquet")
    assert streamed_rows.equals(pd.read_parquet(tmp_path / "default" / "requests.parquet"))
    assert streamed_rows.equals(streamed.report.requests) and len(streamed_rows) == 400
    assert sorted(os.listdir(tmp_path / "streamed")) == sorted(os.listdir(tmp_path / "default"))  # no temporaries
    assert default.summary["tbt_s"] == streamed.summary["tbt_s"]


def test_a_write_failing_mid_run_stops_it_with_a_clear_error_and_leaves_no_table(tmp_path, monkeypatch, capsys):
    """The disk fills while the third block is appended: the run stops at the next block (it does not simulate
    on for nothing), says what failed, and leaves no half-written table, temporary or not."""
    import pyarrow.csv

    monkeypatch.setattr(request_log, "BLOCK_BITS", 5)
    write_csv, appended, block_recorded, finished = pyarrow.csv.write_csv, [], RequestTable.block_recorded, []

    def after_the_helper(self, block):  # the helper's jobs done first, so the failure is seen at the next block
        for job in self._jobs:
            job.exception()
        finished.append(block)
        block_recorded(self, block)

    def fill_up(table, *args, **kwargs):
        if len(appended) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        appended.append(len(table))
        write_csv(table, *args, **kwargs)

    monkeypatch.setattr(pyarrow.csv, "write_csv", fill_up)
    monkeypatch.setattr(RequestTable, "block_recorded", after_the_helper)
    out = tmp_path / "run"
    assert main(["run", str(ROOT / "configs/rdma.yaml"), "-q", "--set", "workload.num_requests=400", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'requests.csv'}: cannot write: No space left on device" in err and "Traceback" not in err
    assert appended == [32, 32] and len(finished) < request_log.blocks(400)  # it stopped before the last block
    assert os.listdir(out) == []


@pytest.mark.parametrize("block_bits", [request_log.BLOCK_BITS, 4])
def test_an_interrupted_streamed_run_keeps_every_row_once(tmp_path, monkeypatch, block_bits):
    """Ctrl-C after 100 requests finished, with the table streamed in blocks of 16 (or one block): every request
    is in the table once, the finished ones with their times."""
    monkeypatch.setattr(request_log, "BLOCK_BITS", block_bits)
    record, recorded = request_log.RequestLog.record, []

    def record_then_interrupt(self, request):
        record(self, request)
        recorded.append(request.id)
        if len(recorded) == 100:
            raise KeyboardInterrupt

    monkeypatch.setattr(request_log.RequestLog, "record", record_then_interrupt)
    out = tmp_path / "run"
    assert main(["run", str(ROOT / "configs/rdma.yaml"), "-q", "--set", "workload.num_requests=300", "-o", str(out)]) == 130
    table = pd.read_csv(out / "requests.csv")
    assert table.id.tolist() == list(range(300)) and table.finish_s.notna().sum() == 100
    pd.testing.assert_frame_equal(pd.read_parquet(out / "requests.parquet"), table, check_dtype=False)
    assert json.loads((out / "summary.json").read_text())["requests"]["completed"] == 100


def test_a_terminated_run_keeps_what_finished_and_no_temporary_file(tmp_path):
    """SIGTERM (``kill``, ``timeout``) in the middle of a run whose table is being streamed: it stops as Ctrl-C
    does, with the finished requests written and no temporary file left."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    run = subprocess.Popen([sys.executable, "-m", "simcxl.cli", "run", str(ROOT / "configs/rdma.yaml"), "-q",
                            "--set", "workload.num_requests=200000", "-o", str(out)],
                           stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    while not (out.exists() and any(name.endswith(".tmp") for name in os.listdir(out))):  # the run has started
        assert run.poll() is None, run.stderr.read()
        time.sleep(0.05)
    time.sleep(1.0)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=120) == 130
    assert "requests finished by then are in" in run.stderr.read()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sim"]["interrupted"] is True and 0 < summary["requests"]["completed"] < 200000
    assert len(pd.read_parquet(out / "requests.parquet")) == 200000
    assert not [name for name in os.listdir(out) if name.endswith(".tmp")]
