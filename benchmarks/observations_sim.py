"""How often Question 3's observations find planted effects, and how often they claim one that is not there.

Introduced for issue 14 ("Observations that find moderate effects"); the method it measures is
`shared.effects` through `shared.sweep_plots.observations`. Not a test (it takes minutes): run it as

    python benchmarks/observations_sim.py [--tables 500] [--json PATH]
    python -m benchmarks.observations_sim

Each simulated table is a 30-run sweep over `shared.sweep.SWEEP_CONFIG` in which every run finished and
val_acc = 50% + planted effects + normal noise of sd 3 pp. Two kinds of tables:
- "planted": batch_norm=True adds 8 pp, augment=True adds 4 pp (d = 1.33 against the noise), nothing
  else matters. Rates: batch_norm found (claimed, True on top), augment found, some other parameter
  claimed (a false claim).
- "null": nothing matters. Rate: tables with any claim.
Two ways of drawing configs:
- "random": every value drawn uniformly (lr log-uniform), as `method: random`.
- "bayes-like": far from balanced, as a Bayes sweep that has found a good region: after 10 random runs
  each run copies one of the three best runs so far and redraws each parameter with probability 0.3.
  The draws then depend on earlier accuracies and concentrate on a few values. The joint model treats
  the drawn configs as given; its test assumes the noise of a run does not depend on its config
  (see `shared.effects`), which holds here by construction, so this measures the cost of imbalance
  (fewer runs for the rare values) and of adaptive draws.
Goal (issue 14, random draws): batch_norm >= 95%, augment >= 70%, a false claim <= 5%, null claims <= 5%.

Measured (benchmarks/results/observations_sim.json, 1,000 planted + 1,000 null tables per design, AMD EPYC,
2 cores): random draws 99.6% / 63.5% / 4.9% / 5.1%; bayes-like draws 95.1% / 42.7% / 8.3% / 4.7%. The
one-parameter-at-a-time method these replace gave 95% / 30% / 10% / 10% on issue 14's simulation.
Why augment stays under 70%: keeping any false claim near 5% over 12 parameters means testing each at
about 0.05 / 11 (Holm). At that level, a t test that is told the true model (batch_norm and augment, 27
residual degrees of freedom) finds a +4 pp effect against 3 pp noise in 68.5% of 30-run tables, averaged
over the random split of augment's values; 70% needs about 31 runs (75% at 33). No method that keeps the
false claims at 5% can beat that test by much, so the goal asks for about 31 runs or more false claims.
On bayes-like draws, rarely drawn values cost power and a parameter drawn together with augment=True can
take its place, so false claims rise to about 8%: treat a lone moderate claim from a Bayes sweep with care.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared import evidence, sweep, sweep_plots  # noqa: E402

RUNS = 30
NOISE = 0.03
PLANTED = {"batch_norm": 0.08, "augment": 0.04}  # added when the value is True
EXPLOIT_AFTER, EXPLOIT_TOP, REDRAW = 10, 3, 0.3


def draw(rng: np.random.Generator) -> dict:
    """One config drawn uniformly from SWEEP_CONFIG (lr log-uniform)."""
    config = {}
    for key, spec in sweep.SWEEP_CONFIG["parameters"].items():
        if "values" in spec:
            config[key] = sweep.plain_value(spec["values"][rng.integers(len(spec["values"]))])
        elif "value" in spec:
            config[key] = spec["value"]
        else:
            config[key] = float(math.exp(rng.uniform(math.log(spec["min"]), math.log(spec["max"]))))
    return config


def accuracy(config: dict, effects: dict, rng: np.random.Generator) -> float:
    return 0.5 + sum(size for key, size in effects.items() if config[key] is True) + rng.normal(0, NOISE)


def simulate_table(effects: dict, design: str, rng: np.random.Generator) -> list[dict]:
    """One sweep's runs records, as shared.sweep writes them."""
    runs = []
    for index in range(RUNS):
        config = draw(rng)
        if design == "bayes-like" and index >= EXPLOIT_AFTER:
            best = sorted(runs, key=lambda r: -r["val_acc"])[:EXPLOIT_TOP]
            parent = best[rng.integers(len(best))]["config"]
            config = {k: (config[k] if rng.random() < REDRAW else parent[k]) for k in config}
        runs.append({"config": config, "val_acc": accuracy(config, effects, rng), "state": "finished",
                     "name": f"run-{index:02d}", "created": f"2024-03-01T10:{index:02d}:00+00:00"})
    return runs


def found(findings: dict, key: str) -> bool:
    """A claim about `key` with its planted value (True) on top."""
    finding = findings.get(key)
    return bool(finding and finding.supported and finding.text.startswith(f"{key}: True beats"))


def rates(design: str, tables: int, seed: int = 0) -> dict:
    """The four rates over `tables` planted and `tables` null tables drawn with `design`."""
    rng = np.random.default_rng(seed)
    counts = dict(batch_norm_found=0, augment_found=0, false_claim=0, null_any_claim=0)
    for _ in range(tables):
        findings = {f.subject: f for f in sweep_plots.observations(simulate_table(PLANTED, design, rng))}
        counts["batch_norm_found"] += found(findings, "batch_norm")
        counts["augment_found"] += found(findings, "augment")
        counts["false_claim"] += any(f.supported for key, f in findings.items() if key not in PLANTED)
        null = sweep_plots.observations(simulate_table({}, design, rng))
        counts["null_any_claim"] += any(f.supported for f in null)
    return {"design": design, "tables": tables, **{k: v / tables for k, v in counts.items()}}


GOALS = dict(batch_norm_found=(">=", 0.95), augment_found=(">=", 0.70), false_claim=("<=", 0.05),
             null_any_claim=("<=", 0.05))


def describe(result: dict) -> str:
    """Each rate with its 95% interval (a rate from N tables is itself an estimate) and the goal's verdict:
    met, within noise of it (the interval holds the goal), or NOT MET (the whole interval misses it)."""
    parts = []
    for key, (sign, goal) in GOALS.items():
        low, high = evidence.binomial_interval(result[key], result["tables"])
        met = result[key] >= goal if sign == ">=" else result[key] <= goal
        verdict = "met" if met else "within noise of it" if low <= goal <= high else "NOT MET"
        parts.append(f"{key} {result[key]:.1%} (95% interval {low:.1%}-{high:.1%}; goal {sign} {goal:.0%}: {verdict})")
    return f"{result['design']}, {result['tables']} planted + {result['tables']} null tables:\n  " + "\n  ".join(parts)


def describe_machine() -> str:
    """'AMD EPYC 7B13, 2 cores, Linux': the CPU's model name where the system gives one."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} cores, {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=500, help="simulated tables of each kind (default 500)")
    parser.add_argument("--designs", default="random,bayes-like", help="random, bayes-like or both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the rates to this JSON file")
    args = parser.parse_args(argv)
    designs = [d.strip() for d in args.designs.split(",")]
    unknown = [d for d in designs if d not in ("random", "bayes-like")]
    if args.tables < 1 or unknown:
        parser.error(f"--tables must be >= 1 and --designs random and/or bayes-like (got {args.tables}, {unknown})")
    if args.json and (args.json.is_dir() or any(p.exists() and not p.is_dir() for p in args.json.parents)):
        parser.error(f"--json {args.json} is a folder or lies under a file: give a file path")
    started, results = time.perf_counter(), []
    for design in designs:
        results.append(rates(design, args.tables, args.seed))
        print(describe(results[-1]), flush=True)
    machine = describe_machine()
    seconds = time.perf_counter() - started
    print(f"{seconds:.0f} s on {machine}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "runs_per_table": RUNS, "noise_sd": NOISE,
                                         "planted": PLANTED, "seconds": round(seconds, 1), "machine": machine},
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
