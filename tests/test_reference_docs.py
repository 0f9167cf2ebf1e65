"""README's reference sections cannot drift from the code: every KV manager, every summary key and every
request column a run writes is documented there."""

from __future__ import annotations

import re

from simcxl.kvcache import CONNECTORS
from simcxl.simulate import simulate

from .conftest import ROOT, scenario

README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end >= 0 else None]


def documented_keys(text: str) -> set[str]:
    """Names in backticks, with brace lists expanded: `a.{b,c}` gives a, a.b and a.c."""
    keys = set()
    for quoted in re.findall(r"`([^`]+)`", text):
        match = re.fullmatch(r"([\w.]*?)\.?\{([^}]+)\}(.*)", quoted)
        if match:
            keys.add(match.group(1))
            keys.update(f"{match.group(1)}.{part}{match.group(3)}" if match.group(1) else part
                        for part in match.group(2).split(","))
        else:
            keys.add(quoted)
    return keys


def test_every_kv_manager_is_in_the_config_reference():
    text = section("Config reference")
    assert [name for name in CONNECTORS if f"`{name}`" not in text] == []


def test_every_summary_key_and_request_column_is_in_the_output_reference():
    text = section("Results folder")
    keys = documented_keys(text)
    runs = [simulate(scenario("rdma.yaml", "workload.num_requests=50")),
            simulate(scenario("tract.yaml", "workload.num_requests=40", "workload.rounds=2"))]
    for run in runs:
        summary = run.summary
        assert [key for key in summary if key not in keys] == []
        assert [f"ttft_breakdown_s.{part}" for part in summary["ttft_breakdown_s"]
                if f"ttft_breakdown_s.{part}" not in keys] == []
        columns = text[text.index("`requests.csv` columns:"):]
        assert [column for column in run.report.requests.columns if f"`{column}`" not in columns
                and not re.search(rf"\b{column}\b", columns.split("(empty cells")[0])] == []
