"""One call on a lent GPU: the GPU tests, cache-build rates, the bench beside the reference loop, a timed sweep.

Introduced for the README's GPU figures (no notebook needs it). A lent GPU comes with minutes, so
everything runs in one command inside a time budget and writes ONE JSON, `OUT/gpu_check.json`
(`gpu_check-2.json` and so on when an earlier check's report is there: it is never overwritten):

    python -m shared.gpu_check --out DIR [--reference PATH/reference_loop.py] [--budget-seconds 480]
    python -m shared.gpu_check --out DIR --tiny     # the same stages in miniature: a CPU runs them in a minute
    make gpu-check OUT=DIR [REFERENCE=PATH] [BUDGET=480]

The stages, in order; each gets a share of the budget, and time one leaves unused passes to the next:
- data: synthetic ~800x600 JPEGs in nature_12K's layout, made here (10 classes x 1,000 in train/, val/);
- tests: tests/test_gpu.py in a pytest subprocess, summarised from its JUnit XML;
- decode: the cache build (`data.load_folder` at 224 px) in images/s, per decoder it offers;
- bench: `bench.run_bench` light + heavy, 224 px, batch 256, compile true, on 3,000 of those JPEGs,
  and with --reference the reference loop in the same process, same sizes, side by side;
- sweep: `bench.estimate_sweep`, then `sweep.run_sweep` over SWEEP_CONFIG with patience 0 (every run
  goes its full 10 or 15 epochs), 10 runs asked for; each finished run's wall time, and the 30-run time
  extrapolated two ways (the finished runs' mean, and the estimate calibrated by those runs).
Each stage runs in its own process and is killed when its time is up; what it finished is kept (the
JSON is rewritten after every stage). Without CUDA every stage but the (then skipped) tests says
"skipped: no CUDA", unless --tiny asks for the miniature.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import inspect
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .runtime import DATA_DIR, REPO_ROOT, UserError, save_json

STAGES = ("data", "tests", "decode", "bench", "sweep")
# Shares of the budget: at the default 480 s, data 90 s, tests 90 s, decode 20 s, bench 120 s, sweep 160 s.
# Every later stage needs the data, so its share is generous; what it leaves (10,000 JPEGs on 16 cores
# take about half a minute) passes on to the stages after it, the sweep last of all.
STAGE_WEIGHTS = {"data": 90, "tests": 90, "decode": 20, "bench": 120, "sweep": 160}
MIN_STAGE_SECONDS = 10   # less than this cannot even import torch and start
JSON_RESERVE_SECONDS = 3  # kept back for writing the report
REPORT_NAME = "gpu_check.json"


@dataclass(frozen=True)
class Scale:
    """Sizes of one check. FULL is the real scale; TINY proves the same code on a CPU in about a minute."""
    train_per_class: int = 1000          # nature_12K has 9,999 train/ images in 10 classes
    val_per_class: int = 20              # its val/ (the test set) has 200; a sweep never reads it
    image_size: tuple = (800, 600)
    bench_per_class: int = 300           # 3,000 images, as the reference measurement used
    input_size: int = 224
    batch_size: int = 256
    bench_epochs: int = 3
    sweep_runs: int = 10
    sweep_epochs: int | None = None      # None: the sweep's own choice (10 or 15)
    sweep_narrow: dict = field(default_factory=dict)
    classes: int = 10


FULL = Scale()
TINY = Scale(train_per_class=6, val_per_class=2, image_size=(160, 120), bench_per_class=6, input_size=32,
             batch_size=16, bench_epochs=2, sweep_runs=2, sweep_epochs=1,
             sweep_narrow=dict(base_filters=[4, 8], kernel_size=[3], batch_size=[16]))


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


# --------------------------------------------------------------------------------------------
# Where things live
# --------------------------------------------------------------------------------------------
def data_roots(scale: Scale) -> tuple[Path, Path]:
    """(the nature_12K-shaped synthetic set, its bench subset); kept in the git-ignored data/ folder."""
    base = DATA_DIR / "gpu_check"
    width, height = scale.image_size
    root = base / f"synthetic_{scale.classes}x{scale.train_per_class}_{width}x{height}"
    return root, base / f"{root.name}_bench{scale.bench_per_class}"


def missing_packages(names=("wandb", "sweeps")) -> list[str]:
    return [name for name in names if importlib.util.find_spec(name) is None]


def load_reference(path: str | os.PathLike):
    """The reference loop as a module (never imported otherwise); a clear error if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--reference {path}: no such file; pass the path of reference_loop.py")
    spec = importlib.util.spec_from_file_location("reference_loop", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "images_per_second", None)) or not isinstance(getattr(module, "CONFIGS", None), dict):
        raise UserError(f"{path} defines no images_per_second(filters, size, batch, n, n_train) and CONFIGS dict; "
                        f"is it reference_loop.py?")
    return module


# --------------------------------------------------------------------------------------------
# The stages (each runs in its own process: `python -m shared.gpu_check --stage NAME --work DIR`)
# --------------------------------------------------------------------------------------------
def stage_data(scale: Scale, work: Path) -> dict:
    """The synthetic set (built once; an interrupted build continues) and its bench subset as hard links."""
    from .bench import make_synthetic

    root, bench_root = data_roots(scale)
    start = time.perf_counter()
    make_synthetic(root, classes=scale.classes, per_class=scale.train_per_class, size=scale.image_size,
                   val_per_class=scale.val_per_class)
    seconds = time.perf_counter() - start
    link_subset(root / "train", bench_root / "train", scale.bench_per_class)
    images = scale.classes * (scale.train_per_class + scale.val_per_class)
    return {"root": str(root), "bench_root": str(bench_root), "images": images, "seconds": seconds,
            "workers": os.cpu_count()}


def link_subset(source: Path, dest: Path, per_class: int) -> None:
    """The first `per_class` images of every class folder, hard-linked (copied where links fail); DONE marks it."""
    import shutil

    if (dest.parent / "DONE").exists():
        return
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        (dest / folder.name).mkdir(parents=True, exist_ok=True)
        for image in sorted(folder.glob("*.jpg"))[:per_class]:
            target = dest / folder.name / image.name
            if not target.exists():
                try:
                    os.link(image, target)
                except OSError:
                    shutil.copy2(image, target)
    (dest.parent / "DONE").write_text(f"{per_class} per class of {source}\n")


def stage_decode(scale: Scale, work: Path) -> dict:
    """Cache-build rate of `data.load_folder` at the check's input size, per decoder it offers."""
    from . import data as data_lib

    _, bench_root = data_roots(scale)
    decoders = ["cpu", "cuda"] if "decoder" in inspect.signature(data_lib.load_folder).parameters else [None]
    out = {"images": None, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "decoders": {}}
    sets = {}
    for decoder in decoders:
        name = decoder or "default"
        if decoder == "cuda" and not torch.cuda.is_available():
            out["decoders"][name] = {"skipped": "no CUDA"}
            continue
        with tempfile.TemporaryDirectory(dir=work) as cache_dir:
            start = time.perf_counter()
            options = {"decoder": decoder} if decoder else {}
            sets[name] = data_lib.load_folder(bench_root / "train", scale.input_size, cache_dir=cache_dir,
                                              progress=False, **options)
            seconds = time.perf_counter() - start
        out["images"] = len(sets[name])
        out["decoders"][name] = {"seconds": seconds, "images_per_second": len(sets[name]) / seconds}
    if decoders == [None]:
        out["decoders"]["cuda"] = {"skipped": "data.load_folder has no decoder parameter yet"}
    if {"cpu", "cuda"} <= sets.keys():
        out["cuda_vs_cpu"] = compare_decoded(sets["cpu"], sets["cuda"])
    return out


def compare_decoded(reference, other) -> dict:
    """How far one decoder's cache is from another's: same files and labels, pixel differences in grey levels."""
    same = reference.files == other.files and torch.equal(reference.labels, other.labels)
    if not same or reference.images.shape != other.images.shape:
        return {"same_files_and_labels": same}
    diff = (reference.images.int() - other.images.cpu().int()).abs().float()
    return {"same_files_and_labels": True, "mean_abs_diff": diff.mean().item(), "max_abs_diff": diff.max().item(),
            "share_over_16_levels": (diff > 16).float().mean().item()}


def stage_bench(scale: Scale, work: Path, reference: str | None = None, save=None) -> dict:
    """`run_bench` per config (saved after each), and the reference loop beside it in this same process."""
    from .bench import run_bench

    _, bench_root = data_roots(scale)
    reference_loop = load_reference(reference) if reference and torch.cuda.is_available() else None
    out = {"input_size": scale.input_size, "batch_size": scale.batch_size, "epochs": scale.bench_epochs,
           "data": f"{scale.classes * scale.bench_per_class} synthetic JPEGs", "configs": {},
           "reference": ("skipped: no CUDA" if reference and reference_loop is None else
                         str(reference) if reference else "not given (--reference PATH)")}
    names = ("light", "heavy") if torch.cuda.is_available() else ("light",)  # heavy takes minutes on a CPU
    for name in names:
        out["configs"][name] = {}
        if reference_loop is not None:  # first: if the budget runs out later, the comparison's other half is here
            out["configs"][name]["reference"] = {"images_per_second": reference_rate(reference_loop, name, scale)}
            if save:
                save(out)
        result = run_bench(bench_root, input_size=scale.input_size, batch_size=scale.batch_size,
                           epochs=scale.bench_epochs, configs=(name,), compile="true")
        out["machine"] = result["machine"]
        out["configs"][name].update(result["configs"][name])
        if reference_loop is not None:
            rate = out["configs"][name]["reference"]["images_per_second"]
            out["configs"][name]["reference"]["engine_over_reference"] = result["configs"][name]["engine"][
                "images_per_second"] / rate
        if save:
            save(out)
    return out


def reference_rate(reference_loop, name: str, scale: Scale) -> float:
    """The reference loop's images/s for a bench config, on as many images as the bench, split as the bench splits."""
    from .bench import CONFIGS

    if tuple(reference_loop.CONFIGS[name]) != CONFIGS[name]["filters"]:
        raise RuntimeError(f"reference {name} filters {reference_loop.CONFIGS[name]} differ from the bench's")
    images = scale.classes * scale.bench_per_class
    val_images = scale.classes * round(0.2 * scale.bench_per_class)  # bench's class-balanced split
    return reference_loop.images_per_second(CONFIGS[name]["filters"], size=scale.input_size, batch=scale.batch_size,
                                            n=images, n_train=images - val_images)


def stage_sweep(scale: Scale, work: Path, save=None) -> dict:
    """Cache build, the estimate, then a real sweep at the check's scale; its runs table is saved after every run."""
    from . import data as data_lib
    from .bench import estimate_sweep
    from .sweep import run_sweep, sweep_config

    root, _ = data_roots(scale)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = sweep_config("bayes", scale.input_size, scale.sweep_epochs, patience=0, **scale.sweep_narrow)
    out = {"runs_requested": scale.sweep_runs, "config": config, "device": device}
    start = time.perf_counter()
    train_set, val_set = data_lib.load_split(root, scale.input_size, verbose=False)  # the runs reuse it
    out["cache_build"] = {"seconds": time.perf_counter() - start, "images": len(train_set) + len(val_set)}
    out["estimate"] = estimate_sweep(root, config, count=30, device=device)
    out["started"] = time.time()
    if save:
        save(out)
    run_sweep(root, count=scale.sweep_runs, config=config, path=work / "sweep_runs.json")
    out["finished"] = time.time()
    return out


def sweep_timings(stage: dict, runs_table: Path) -> dict:
    """Per-run wall times from the runs table the sweep saved after each run (also after a kill), and
    two extrapolations to 30 runs.

    A run's wall time is its record's `wall_seconds` (training, data loading and evaluation); in an older
    table, the gap between runs' `created` stamps (to the second) stands in for it.
    `extrapolated_30_runs_seconds` assumes the finished runs are typical; `calibrated_estimate_30_runs_seconds`
    scales the estimate over the whole space by how far the finished runs were from their own estimates,
    which holds up when only a few (possibly light or heavy) runs finished.
    """
    from .bench import estimate_run_seconds
    from .model import CNNConfig
    from .train import TrainConfig

    runs = json.loads(runs_table.read_text())["runs"] if runs_table.exists() else []
    if not runs:
        return {"runs_finished": 0}
    end = stage.get("finished") or runs_table.stat().st_mtime
    stamps = [datetime.datetime.fromisoformat(run["created"]).timestamp() for run in runs] + [end]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    # Runs record their own wall time (sweep.train_one); the stamps' gaps are the fallback for older tables.
    walls = [run.get("wall_seconds", gap) for run, gap in zip(runs, gaps)]
    per_run = (end - stage["started"]) / len(runs)
    estimate = stage["estimate"]
    estimated = [estimate_run_seconds(CNNConfig.from_dict(run["config"]), TrainConfig.from_dict(run["config"]),
                                      estimate["train_folder_images"], estimate["speed"]) for run in runs]
    measured_over_estimated = (end - stage["started"]) / sum(estimated)
    return {
        "runs_finished": len(runs),
        "runs": [{"name": run["name"], "state": run["state"], "error": run["error"], "epochs": len(run["epoch_seconds"]),
                  "macs": run["macs"], "batch_size": run["config"].get("batch_size"), "wall_seconds": wall,
                  "estimated_seconds": guess, "train_seconds": sum(run["epoch_seconds"]),
                  "images_per_second": run["images_per_second"]} for run, wall, guess in zip(runs, walls, estimated)],
        "sweep_seconds": end - stage["started"], "mean_run_seconds": per_run,
        "extrapolated_30_runs_seconds": stage["cache_build"]["seconds"] + 30 * per_run,
        "measured_over_estimated": measured_over_estimated,
        "calibrated_estimate_30_runs_seconds": (stage["cache_build"]["seconds"]
                                                + estimate["seconds_per_run"] * 30 * measured_over_estimated),
    }


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
        command = [sys.executable, "-m", "shared.gpu_check", "--stage", name, "--work", str(work),
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
    parser = argparse.ArgumentParser(prog="python -m shared.gpu_check", description=__doc__,
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
    if args.budget_seconds < MIN_STAGE_SECONDS + JSON_RESERVE_SECONDS:
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
    stage = {"data": stage_data, "decode": stage_decode, "bench": stage_bench, "sweep": stage_sweep}[args.stage]
    options = {"reference": args.reference} if args.stage == "bench" else {}
    if args.stage in ("bench", "sweep"):
        options["save"] = save
    save(stage(scale, work, **options))


if __name__ == "__main__":
    main()
