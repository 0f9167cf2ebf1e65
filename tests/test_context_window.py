"""A request's prompt and output must fit the model's context window (its config.json's max_position_embeddings):
checked at load, naming the key or the trace line."""

from __future__ import annotations

import json

from simcxl.cli import main
from simcxl.config.hf_import import model_from_hf, read_hf_config

from .conftest import CONFIGS, scenario


def test_the_window_comes_from_max_position_embeddings():
    path = CONFIGS / "models/hf/Qwen3-32B/config.json"
    assert model_from_hf(read_hf_config(path), path).fields["context_window"] == 40_960
    assert scenario("rdma.yaml").scenario.model.context_window == 131_072  # Llama-3.1-8B


def test_a_synthetic_length_past_the_window_names_the_key(capsys):
    assert main(["validate", "configs/rdma.yaml", "--set", "workload.input_tokens={dist: fixed, value: 200000}"]) == 2
    err = capsys.readouterr().err
    assert "workload.input_tokens: up to 201,024 tokens" in err and "context window is 131,072" in err


def test_a_trace_line_past_the_window_is_named(tmp_path, capsys):
    trace = tmp_path / "long.jsonl"
    rows = [{"timestamp": 0, "input_length": 1000, "output_length": 10, "hash_ids": [0, 1]},
            {"timestamp": 5, "input_length": 150_000, "output_length": 10, "hash_ids": list(range(293))}]
    trace.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main(["run", "configs/rdma_mooncake.yaml", "-q", "-o", str(tmp_path / "out"),
                 "--set", f"workload.path={trace}"]) == 2
    assert f"{trace}:2: 150,000 prompt + 10 output tokens exceed the model's context window of 131,072" in \
        capsys.readouterr().err
    assert main(["run", "configs/rdma_mooncake.yaml", "-q", "-o", str(tmp_path / "clipped"), "--set",
                 f"workload.path={trace}", "--set", "workload.max_input_tokens=100000"]) == 0
