"""``lamina bench routing`` end to end, small: two real llama.cpp endpoints (the bundled GGUF from the
session's models folder, which every test's data directory links to), every phase through a real
``lamina serve``."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

from lamina.bench.routing import PHASES, schedule, tenant_prompts
from lamina.bench.sources import sample_texts
from tests.cli_runner import lamina


def test_bench_routing_runs_every_phase_and_prefix_routing_finds_the_prefixes(models_dir: Path) -> None:
    run = lamina(
        "bench", "routing", "--tenants", "2", "--prompt-chars", "600", "--conversations", "2",
        "--turns", "2", "--rate", "5", "--think-s", "0", "--busy-tokens", "24", "--json",
    )  # fmt: skip
    result = json.loads(run.stdout)
    assert result["machine"]["cpu"] and result["config"]["busy_endpoint"] == "B"
    assert list(result["phases"]) == list(PHASES)
    for name, phase in result["phases"].items():
        assert (phase["requests"], phase["ok"], phase["errors"]) == (4, 4, {}), (name, phase)
        assert phase["conversations"] == 2 and phase["output_tokens"] > 0, name
        assert phase["ttft_s"]["mean"] > 0 and phase["req_per_s"] > 0, name
        assert abs(sum(phase["endpoint_share"].values()) - 1) < 0.01, (name, phase["endpoint_share"])
        assert sum(phase["routing_decisions"].values()) == 4, (name, phase["routing_decisions"])
    for name in ("weighted", "weighted_overloaded"):
        assert result["phases"][name]["routing_decisions"] == {"weighted": 4}
    prefix = result["phases"]["prefix"]
    # each conversation's second turn goes where its first was served
    assert prefix["routing_decisions"].get("prefix_hit", 0) >= 2, prefix["routing_decisions"]
    assert prefix["prefix_hit_ratio"] >= 0.5 and prefix["prompt_tokens"]["cached"] > 0
    busy = result["phases"]["prefix_overloaded"]
    assert busy["busy_load_seen"] > result["config"]["route_load_bound"]
    assert busy["busy_maker"]["requests"] > 0 and busy["busy_maker"]["errors"] == {}
    # only the load guard, reading the server's own count, knew: it sent nothing to the busy endpoint
    assert busy["endpoint_share"]["B"] == 0.0, busy


def test_every_phase_replays_one_schedule_and_each_tenant_has_its_own_prompt() -> None:
    plan = schedule(12, 8, 4, 0.25, 1.0, seed=3)
    assert plan == schedule(12, 8, 4, 0.25, 1.0, seed=3)
    assert [c.tenant for c in plan] == [i % 8 for i in range(12)]
    assert all(len(c.questions) == 4 and len(set(c.questions)) == 4 and len(c.think_s) == 3 for c in plan)
    assert all(b.arrival_s > a.arrival_s for a, b in pairwise(plan))
    prompts = tenant_prompts(sample_texts(64), 8, 4400)
    assert len(set(prompts)) == 8 and all(len(p) == 4400 for p in prompts)
