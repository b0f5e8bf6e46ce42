"""benchmarks/observations_sim.py: the Question-3 simulation runs both ways and writes its rates as JSON."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks import observations_sim

ROOT = Path(__file__).resolve().parents[1]


def test_a_few_tables_give_the_four_rates_as_json(tmp_path):
    out = tmp_path / "rates.json"
    assert observations_sim.main(["--tables", "2", "--designs", "random,bayes-like", "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert [r["design"] for r in saved["results"]] == ["random", "bayes-like"]
    assert saved["machine"] and saved["date"].endswith("UTC")
    for result in saved["results"]:
        assert result["tables"] == 2
        assert all(0 <= result[key] <= 1 for key in observations_sim.GOALS)
        for key, (low, high) in result["intervals_95"].items():
            assert 0 <= low <= result[key] <= high <= 1


def test_false_claims_are_counted_per_parameter_worst_and_mean():
    """The goal bounds each no-effect parameter's claim rate: the worst one and the mean over them are reported,
    each over the tables that varied it, beside the share of tables with any false claim."""
    result = observations_sim.rates("random", 3, seed=5)
    per_parameter = result["false_claim_per_parameter"]
    assert "batch_norm" not in per_parameter and "augment" not in per_parameter and "lr" in per_parameter
    assert result["worst_false_claim"] == max(per_parameter.values())
    assert result["worst_false_claim_parameter"] in per_parameter and result["worst_false_claim_tables"] == 3
    assert result["mean_false_claim"] == np.mean(list(per_parameter.values()))
    assert result["mean_false_claim_tables"] == 3 * len(per_parameter)
    assert result["mean_false_claim"] <= result["any_false_claim"]


def test_bayes_like_draws_are_far_from_balanced():
    runs = observations_sim.simulate_table(observations_sim.PLANTED, "bayes-like", np.random.default_rng(0))
    shares = [np.mean([r["config"][key] is True for r in runs[observations_sim.EXPLOIT_AFTER:]])
              for key in ("batch_norm", "augment")]
    assert max(abs(share - 0.5) for share in shares) > 0.2


def test_runs_as_a_script_and_as_a_module():
    for command in (["benchmarks/observations_sim.py"], ["-m", "benchmarks.observations_sim"]):
        done = subprocess.run([sys.executable, *command, "--tables", "1", "--designs", "random"], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "random, 1 planted + 1 null tables" in done.stdout
