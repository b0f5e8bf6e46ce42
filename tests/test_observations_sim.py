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
    for result in saved["results"]:
        assert result["tables"] == 2
        assert all(0 <= result[key] <= 1 for key in observations_sim.GOALS)


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
