"""The stages of the GPU check, each a function that measures one thing and returns its figures.

A part of `benchmarks/gpu_check.py`, which runs each stage in its own process inside its share of the
time budget (`python -m benchmarks.gpu_check --stage NAME --work DIR`) and writes the one report.

- data: synthetic ~800x600 JPEGs in nature_12K's layout, and a bench subset of them as hard links;
- decode: the cache build (`data.load_folder`) in images/s, per decoder it offers;
- bench: `benchmarks.bench.run_bench` beside the reference loop, same sizes, same process;
- sweep: `shared.estimate.estimate_sweep`, then a real `sweep.run_sweep`; `sweep_timings` reads its runs.
"""
from __future__ import annotations

import importlib.util
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from shared.runtime import DATA_DIR, UserError

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



def data_roots(scale: Scale) -> tuple[Path, Path]:
    """(the nature_12K-shaped synthetic set, its bench subset); kept in the git-ignored data/ folder."""
    base = DATA_DIR / "gpu_check"
    width, height = scale.image_size
    root = base / f"synthetic_{scale.classes}x{scale.train_per_class}_{width}x{height}"
    return root, base / f"{root.name}_bench{scale.bench_per_class}"


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
# The stages
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
    from shared import data as data_lib

    _, bench_root = data_roots(scale)
    out = {"images": None, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "decoders": {}}
    sets = {}
    for decoder in ("cpu", "cuda"):
        if decoder == "cuda" and not torch.cuda.is_available():
            out["decoders"][decoder] = {"skipped": "no CUDA"}
            continue
        with tempfile.TemporaryDirectory(dir=work) as cache_dir:
            start = time.perf_counter()
            sets[decoder] = data_lib.load_folder(bench_root / "train", scale.input_size, cache_dir=cache_dir,
                                                 progress=False, decoder=decoder)
            seconds = time.perf_counter() - start
        out["images"] = len(sets[decoder])
        out["decoders"][decoder] = {"seconds": seconds, "images_per_second": len(sets[decoder]) / seconds}
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
    from shared import data as data_lib
    from shared.estimate import estimate_sweep
    from shared.sweep import run_sweep, sweep_config

    root, _ = data_roots(scale)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = sweep_config("bayes", scale.input_size, scale.sweep_epochs, patience=0, **scale.sweep_narrow)
    out = {"runs_requested": scale.sweep_runs, "config": config, "device": device}
    start = time.perf_counter()
    train_set, val_set = data_lib.load_split(root, scale.input_size, verbose=False)  # the runs reuse its cache
    out["cache_build"] = {"seconds": time.perf_counter() - start, "images": len(train_set) + len(val_set)}
    del train_set, val_set  # copies of the cached images (~1.5 GB at full scale) that only gave their counts
    out["estimate"] = estimate_sweep(root, config, count=30, device=device)
    out["started"] = time.time()
    if save:
        save(out)
    run_sweep(root, count=scale.sweep_runs, config=config, path=work / "sweep_runs.json")
    out["finished"] = time.time()
    return out


def sweep_timings(stage: dict, table_path: Path) -> dict:
    """Per-run wall times from the runs table the sweep saved after each run (also after a kill), and
    two extrapolations to 30 runs.

    A run's wall time is its record's `wall_seconds` (training, data loading and evaluation; `sweep.train_one`).
    `extrapolated_30_runs_seconds` assumes the finished runs are typical; `calibrated_estimate_30_runs_seconds`
    scales the estimate over the whole space by how far the finished runs were from their own estimates,
    which holds up when only a few (possibly light or heavy) runs finished.
    """
    from shared.estimate import estimate_run_seconds
    from shared.model import CNNConfig
    from shared.runs_table import read_table
    from shared.train import TrainConfig

    runs = read_table(table_path)["runs"]
    if not runs:
        return {"runs_finished": 0}
    end = stage.get("finished") or table_path.stat().st_mtime
    per_run = (end - stage["started"]) / len(runs)
    estimate = stage["estimate"]
    estimated = [estimate_run_seconds(CNNConfig.from_dict(run["config"]), TrainConfig.from_dict(run["config"]),
                                      estimate["train_folder_images"], estimate["speed"]) for run in runs]
    measured_over_estimated = (end - stage["started"]) / sum(estimated)
    return {
        "runs_finished": len(runs),
        "runs": [{"name": run["name"], "state": run["state"], "error": run["error"], "epochs": len(run["epoch_seconds"]),
                  "macs": run["macs"], "batch_size": run["config"].get("batch_size"),
                  "wall_seconds": run["wall_seconds"], "estimated_seconds": guess,
                  "train_seconds": sum(run["epoch_seconds"]), "images_per_second": run["images_per_second"]}
                 for run, guess in zip(runs, estimated)],
        "sweep_seconds": end - stage["started"], "mean_run_seconds": per_run,
        "extrapolated_30_runs_seconds": stage["cache_build"]["seconds"] + 30 * per_run,
        "measured_over_estimated": measured_over_estimated,
        "calibrated_estimate_30_runs_seconds": (stage["cache_build"]["seconds"]
                                                + estimate["seconds_per_run"] * 30 * measured_over_estimated),
    }
