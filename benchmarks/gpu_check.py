"""One call on a lent GPU: the GPU tests, cache-build rates, the bench beside the reference loop, a timed sweep.

A tool beside the package, for the GPU figures in docs/speed.md (no notebook needs it). A lent GPU comes with
minutes, so everything runs in one command inside a time budget and writes ONE JSON, `OUT/gpu_check.json`
(`gpu_check-2.json` and so on when an earlier check's report is there: it is never overwritten):

    python -m benchmarks.gpu_check --out DIR [--reference PATH/reference_loop.py] [--budget-seconds 480]
    python -m benchmarks.gpu_check --out DIR --tiny   # the same stages in miniature: a CPU runs them in a minute
    make gpu-check OUT=DIR [REFERENCE=PATH] [BUDGET=480]

The stages, in order (`benchmarks/gpu_stages.py`); each gets a share of the budget, and time one leaves
unused passes to the next:
- data: synthetic ~800x600 JPEGs in nature_12K's layout, made here (10 classes x 1,000 in train/, val/);
- tests: tests/test_gpu.py in a pytest subprocess, summarised from its JUnit XML;
- decode: the cache build (`data.load_folder` at 224 px) in images/s, per decoder it offers;
- bench: `bench.run_bench` light + heavy, 224 px, batch 256, compile true, on 3,000 of those JPEGs,
  and with --reference the reference loop in the same process, same sizes, side by side;
- sweep: `shared.estimate.estimate_sweep`, then `sweep.run_sweep` over SWEEP_CONFIG with patience 0 (every
  run goes its full 10 or 15 epochs), 10 runs asked for; each finished run's wall time, and the 30-run time
  extrapolated two ways (the finished runs' mean, and the estimate calibrated by those runs).
Each stage runs in its own process and is killed when its time is up; what it finished is kept (the
JSON is rewritten after every stage). Without CUDA every stage but the (then skipped) tests says
"skipped: no CUDA", unless --tiny asks for the miniature.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

from shared.runtime import DATA_DIR, REPO_ROOT, UserError, save_json

from . import gpu_stages
from .gpu_stages import FULL, TINY, data_roots, load_reference, sweep_timings

STAGES = ("data", "tests", "decode", "bench", "sweep")
# Shares of the budget: at the default 480 s, data 90 s, tests 90 s, decode 20 s, bench 120 s, sweep 160 s.
# Every later stage needs the data, so its share is generous; what it leaves (10,000 JPEGs on 16 cores
# take about half a minute) passes on to the stages after it, the sweep last of all.
STAGE_WEIGHTS = {"data": 90, "tests": 90, "decode": 20, "bench": 120, "sweep": 160}
MIN_STAGE_SECONDS = 10   # less than this cannot even import torch and start
JSON_RESERVE_SECONDS = 3  # kept back for writing the report
REPORT_NAME = "gpu_check.json"


def plan_deadlines(budget_seconds: float, stages=STAGES) -> dict[str, float]:
    """Seconds after the start by which each stage must end: its share of the budget plus what earlier
    stages left unused (the deadlines are cumulative)."""
    usable = budget_seconds - JSON_RESERVE_SECONDS
    total_weight = sum(STAGE_WEIGHTS[name] for name in stages)
    deadlines, elapsed = {}, 0.0
    for name in stages:
        elapsed += usable * STAGE_WEIGHTS[name] / total_weight
        deadlines[name] = elapsed
    return deadlines


def missing_packages(names=("wandb", "sweeps")) -> list[str]:
    return [name for name in names if importlib.util.find_spec(name) is None]



OUTCOMES = {"failure": "failed", "error": "error", "skipped": "skipped"}  # JUnit XML tag -> pytest's word


def junit_summary(path: Path) -> dict:
    """Counts and one row per test (outcome, seconds, message) from pytest's JUnit XML."""
    tests = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in OUTCOMES:
                outcome = OUTCOMES[child.tag]
                message = ((child.get("message") or child.text or "").strip().splitlines() or [""])[0][:300]
                break
        tests.append({"name": case.get("name"), "outcome": outcome, "seconds": float(case.get("time", 0)),
                      "message": message})
    counts = {outcome: sum(t["outcome"] == outcome for t in tests) for outcome in ("passed", "failed", "error", "skipped")}
    return {**counts, "tests": tests}


def verbose_summary(output: str) -> dict:
    """The same counts from `pytest -v` lines ("tests/test_gpu.py::test_x PASSED [ 10%]") of a run cut short."""
    words = {"PASSED": "passed", "FAILED": "failed", "ERROR": "error", "SKIPPED": "skipped"}
    tests = []
    for line in output.splitlines():
        match = re.match(r"\S+::(\S+) (PASSED|FAILED|ERROR|SKIPPED)", line)
        if match:
            tests.append({"name": match[1], "outcome": words[match[2]], "seconds": None, "message": ""})
    counts = {outcome: sum(t["outcome"] == outcome for t in tests) for outcome in words.values()}
    return {**counts, "tests": tests, "cut_short": True}


# --------------------------------------------------------------------------------------------
# Running the stages inside the budget
# --------------------------------------------------------------------------------------------
def run_process(command: list[str], timeout: float, env: dict) -> dict:
    """Run a command in its own process group; kill the whole group when `timeout` runs out."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=max(timeout, 1))
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the stage and its workers (DataLoader, compile) alike
        output, _ = process.communicate()
        timed_out = True
    return {"returncode": process.returncode, "timed_out": timed_out, "seconds": time.perf_counter() - start,
            "output": output or ""}


def skip_reason(name: str, args, has_cuda: bool, missing: list[str]) -> str | None:
    if name == "tests":
        return None  # without CUDA the module reports its own skips
    if not has_cuda and not args.tiny:
        return "no CUDA (run with --tiny on a CPU)"
    if name == "sweep" and missing:
        return (f"{' and '.join(missing)} not installed here: carry their wheels (requirements.txt pins "
                f"wandb and sweeps)")
    if name != "data" and not all((folder / "DONE").exists() for folder in data_roots(TINY if args.tiny else FULL)):
        return "no data: the data stage did not finish (give it more --budget-seconds)"
    return None


def child_env(work: Path) -> dict:
    """The stages write nothing outside the work folder: caches, W&B's offline runs, outputs."""
    return {**os.environ, "INAT_CACHE": str(work / "cache"), "INAT_OUTPUTS": str(work / "outputs"),
            "WANDB_DIR": str(work / "wandb"), "WANDB_MODE": "offline", "WANDB_SILENT": "true",
            "PYTHONUNBUFFERED": "1"}


def run_stage_process(name: str, args, work: Path, timeout: float) -> dict:
    """One stage in its own process; the figures come from the JSON it saved, complete or partial."""
    if name == "tests":
        junit = work / "junit.xml"
        command = [sys.executable, "-m", "pytest", str(REPO_ROOT / "tests" / "test_gpu.py"), "-v", "-rA",
                   "-p", "no:cacheprovider", f"--junitxml={junit}"]
    else:
        command = [sys.executable, "-m", "benchmarks.gpu_check", "--stage", name, "--work", str(work),
                   "--out", str(args.out)] + (["--tiny"] if args.tiny else []) + (
                   ["--reference", str(args.reference)] if args.reference else [])
    process = run_process(command, timeout, child_env(work))
    saved = work / f"{name}.json"
    result = json.loads(saved.read_text()) if saved.exists() else {}
    if name == "tests":  # pytest writes its XML at the end: a killed run is read from its verbose lines
        result = junit_summary(junit) if junit.exists() else verbose_summary(process["output"])
    if name == "sweep" and "started" in result:
        result["timings"] = sweep_timings(result, work / "sweep_runs.json")
    ok = process["returncode"] == 0 and not (name == "tests" and (result.get("failed") or result.get("error")))
    status = (f"partial: its {timeout:.0f} s were spent" if process["timed_out"] else "done" if ok else "failed")
    result.update(status=status, seconds=process["seconds"], budget_seconds=timeout)
    if status != "done":
        result["output_tail"] = process["output"][-3000:]
    return result


def run_check(args) -> dict:
    """Every stage in order inside the budget; the report is rewritten after each stage."""
    started = time.monotonic()
    has_cuda = torch.cuda.is_available()
    missing = missing_packages()
    stages = [name for name in STAGES if name in args.stages]
    deadlines = plan_deadlines(args.budget_seconds, stages)
    report = {"gpu": torch.cuda.get_device_name() if has_cuda else None, "torch": torch.__version__,
              "cuda": torch.version.cuda, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "tiny": args.tiny, "budget_seconds": args.budget_seconds, "reference": args.reference,
              "missing_packages": missing, "stages": {}}
    out_file = args.report
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check-", dir=DATA_DIR) as work:
        for name in stages:
            reason = skip_reason(name, args, has_cuda, missing)
            timeout = deadlines[name] - (time.monotonic() - started)
            if reason is None and timeout < MIN_STAGE_SECONDS:
                reason = "budget spent"
            if reason:
                report["stages"][name] = {"status": f"skipped: {reason}"}
            else:
                print(f"[gpu_check] {name}: up to {timeout:.0f} s", file=sys.stderr, flush=True)
                report["stages"][name] = run_stage_process(name, args, Path(work), timeout)
            report["elapsed_seconds"] = time.monotonic() - started
            save_json(report, out_file)
    report["summary"] = summarize(report)
    report["ok"] = not any(stage["status"] == "failed" for stage in report["stages"].values())
    save_json(report, out_file)
    return report


# --------------------------------------------------------------------------------------------
# The summary
# --------------------------------------------------------------------------------------------
def summarize(report: dict) -> list[str]:
    """A few lines a person reads first; every figure in them is also in the JSON."""
    stages = report["stages"]
    lines = [f"GPU check on {report['gpu'] or 'CPU (no CUDA)'}, torch {report['torch']}, {report['date']}, "
             f"{'tiny, ' if report['tiny'] else ''}{report['elapsed_seconds']:.0f} of {report['budget_seconds']} s"]
    for name, stage in stages.items():
        lines.append(f"{name}: {stage['status']}" + (f" ({stage['seconds']:.0f} s)" if "seconds" in stage else ""))
    tests = stages.get("tests", {})
    if "passed" in tests:
        lines.append(f"  tests: {tests['passed']} passed, {tests['failed']} failed, {tests['error']} errors, "
                     f"{tests['skipped']} skipped")
        lines += [f"    {t['outcome']}: {t['name']}: {t['message']}" for t in tests["tests"] if t["outcome"] in ("failed", "error")]
    for decoder, rate in stages.get("decode", {}).get("decoders", {}).items():
        lines.append(f"  decode {decoder}: " + (f"{rate['images_per_second']:,.0f} img/s" if "images_per_second" in rate
                                                 else f"skipped: {rate['skipped']}"))
    for config, bench in stages.get("bench", {}).get("configs", {}).items():
        parts = [f"{pipeline} {bench[pipeline]['images_per_second']:,.0f} img/s"
                 for pipeline in ("engine", "reference", "typical") if pipeline in bench]
        if "engine_over_reference" in bench.get("reference", {}):
            parts.append(f"engine/reference x{bench['reference']['engine_over_reference']:.2f}")
        if "engine" in bench:
            parts.append(f"cache build {bench['engine']['cache_images_per_second']:,.0f} img/s")
        lines.append(f"  bench {config}: " + ", ".join(parts))
    sweep = stages.get("sweep", {})
    if "estimate" in sweep:
        lines.append(f"  {sweep['estimate']['describe']}")
    timings = sweep.get("timings", {})
    if timings.get("runs_finished"):
        lines.append(f"  sweep: {timings['runs_finished']} runs, {timings['mean_run_seconds']:.1f} s per run, "
                     f"x{timings['measured_over_estimated']:.2f} their estimates; 30 runs ~"
                     f"{timings['extrapolated_30_runs_seconds'] / 60:.1f} min at this mean, ~"
                     f"{timings['calibrated_estimate_30_runs_seconds'] / 60:.1f} min by the calibrated estimate")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for gpu_check.json")
    parser.add_argument("--reference", help="reference_loop.py, run beside the engine in the bench stage")
    parser.add_argument("--budget-seconds", type=float, default=480, help="the whole check ends inside this")
    parser.add_argument("--tiny", action="store_true", help="few small images, 32 px, 2 short runs: for a CPU")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    parser.add_argument("--stage", choices=[s for s in STAGES if s != "tests"], help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.stages = check_arguments(args)
        if args.stage:
            run_stage(args)
            return
        report = run_check(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print("\n".join(report["summary"] + [f"wrote {args.report}"]))
    raise SystemExit(0 if report["ok"] else 1)


def check_arguments(args) -> list[str]:
    """Everything a user can get wrong, refused in one line before any work starts."""
    if not math.isfinite(args.budget_seconds) or args.budget_seconds < MIN_STAGE_SECONDS + JSON_RESERVE_SECONDS:
        raise UserError(f"--budget-seconds must be at least {MIN_STAGE_SECONDS + JSON_RESERVE_SECONDS}, "
                        f"got {args.budget_seconds:g}")
    stages = [name.strip() for name in args.stages.split(",") if name.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown or not stages:
        raise UserError(f"--stages: unknown {', '.join(unknown) or '(none given)'}; choose from {','.join(STAGES)}")
    if args.reference:
        load_reference(args.reference)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out {args.out} is a file; give a folder")
    args.report = report_path(Path(args.out))
    return stages


def report_path(out: Path) -> Path:
    """OUT/gpu_check.json, or the first free gpu_check-N.json: an earlier check's figures are never overwritten."""
    path, number = out / REPORT_NAME, 1
    while path.exists():
        number += 1
        path = out / f"{Path(REPORT_NAME).stem}-{number}.json"
    return path


def run_stage(args) -> None:
    """Inside a stage's own process: run it and save its JSON (partial figures as they come)."""
    work = Path(args.work)
    scale = TINY if args.tiny else FULL
    save = lambda result: save_json(result, work / f"{args.stage}.json", default=str)  # noqa: E731
    stage = getattr(gpu_stages, f"stage_{args.stage}")
    options = {"reference": args.reference} if args.stage == "bench" else {}
    if args.stage in ("bench", "sweep"):
        options["save"] = save
    save(stage(scale, work, **options))


if __name__ == "__main__":
    main()
