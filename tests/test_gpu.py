"""The CUDA paths, on a real GPU: fp16 + GradScaler, no-compile and compile, checkpoint and test set,
viz under autocast, fine-tuning, the CUDA cache build. Every test is small (seconds on an H100), on the
demo data at 32-64 px. Without CUDA the whole module is skipped; `make gpu-check` runs it on a lent GPU.
"""
import dataclasses
import math

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

from benchmarks import bench, gpu_stages
from shared import data, finetune, viz
from shared import estimate as estimate_lib
from shared import train as train_lib
from shared.model import CNN, CNNConfig
from shared.sweep import sweep_config
from shared.train import TrainConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs CUDA: run on a GPU machine (make gpu-check)")

DEVICE = torch.device("cuda")
SMALL = CNNConfig(filters=(16, 16, 32, 32, 64), kernel_sizes=(3,) * 5, activation="relu", dense_neurons=64,
                  dropout=0.0, input_size=32)


def quick(**overrides) -> TrainConfig:
    return TrainConfig(**{"epochs": 3, "batch_size": 64, "augment": False, "patience": 0, **overrides})


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a.flatten().float(), b.flatten().float(), dim=0).item()


@pytest.fixture(scope="module")
def root():
    return data.find_data()


@pytest.fixture(scope="module")
def split(root):
    return data.load_split(root, SMALL.input_size, verbose=False)


def test_fp16_with_grad_scaler_and_no_compile_learns(split, monkeypatch):
    """The T4/V100 path (fp16 autocast + GradScaler) and the P100 path (no compile), forced on this GPU.

    A skipped optimizer step halves the GradScaler's scale. A few falls at the start are its calibration
    (it starts at 2**16); a scale that keeps falling means the steps are skipped and nothing trains,
    while the printed loss could still look plausible.
    """
    monkeypatch.setattr(train_lib, "amp_dtype", lambda device: torch.float16 if device.type == "cuda" else None)
    scalers = []

    class RecordingScaler(torch.amp.GradScaler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.scales = []
            scalers.append(self)

        def update(self, *args, **kwargs):
            super().update(*args, **kwargs)
            self.scales.append(self.get_scale())

    monkeypatch.setattr(torch.amp, "GradScaler", RecordingScaler)
    torch.manual_seed(0)
    model = CNN(SMALL)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    out = train_lib.fit(model, *split, quick(compile="false"), DEVICE, progress=False)
    assert len(scalers) == 1, "fp16 autocast must train through a GradScaler"
    scales = scalers[0].scales
    falls = [later < earlier for earlier, later in zip(scales, scales[1:])]
    late = falls[len(falls) // 2:]
    assert all(math.isfinite(s) and s > 0 for s in scales)
    assert sum(late) <= max(1, len(late) // 10), f"{sum(late)} of the last {len(late)} steps skipped: {scales}"
    losses = [row["train_loss"] for row in out["history"]]
    assert losses[-1] < losses[0], losses
    moved = [name for name, p in model.named_parameters() if not torch.equal(p.detach().cpu(), before[name])]
    assert len(moved) == len(before), f"parameters that never moved: {sorted(set(before) - set(moved))}"


def test_compiled_training_matches_eager_roughly(split):
    from torch._dynamo.utils import counters

    results = {}
    for setting in ("false", "true"):
        graphs_before = counters["stats"]["unique_graphs"]
        torch.manual_seed(0)
        out = train_lib.fit(CNN(SMALL), *split, quick(epochs=2, compile=setting), DEVICE, progress=False)
        results[setting] = out, counters["stats"]["unique_graphs"] - graphs_before
    (eager, eager_graphs), (compiled, compiled_graphs) = results["false"], results["true"]
    assert eager_graphs == 0 and compiled_graphs >= 1, "compile=true did not compile (or false did)"
    first_eager, first_compiled = eager["history"][0]["train_loss"], compiled["history"][0]["train_loss"]
    assert abs(first_compiled - first_eager) / first_eager < 0.05, (first_eager, first_compiled)
    assert abs(compiled["val_acc"] - eager["val_acc"]) < 0.15, (eager["val_acc"], compiled["val_acc"])


def test_best_checkpoint_and_test_set_on_cuda(root, tmp_path):
    path = tmp_path / "best.pt"
    tcfg = quick(epochs=2)
    result = train_lib.train(SMALL, root, tcfg, test=True, device=DEVICE, checkpoint=path, progress=False,
                             verbose=False)
    model, saved = train_lib.load_checkpoint(path)
    assert saved["val_acc"] == result.val_acc and saved["best_epoch"] == result.best_epoch
    for (name, loaded), trained in zip(model.state_dict().items(), result.model.state_dict().values()):
        assert torch.equal(loaded, trained), name
    test_set = data.load_test(root, SMALL.input_size, verbose=False)
    loss, acc = train_lib.evaluate(model.to(DEVICE), test_set, 2 * tcfg.batch_size, DEVICE)
    assert math.isfinite(result.test_loss) and 0.0 <= result.test_acc <= 1.0
    assert acc == pytest.approx(result.test_acc, abs=2 / len(test_set))  # the reloaded model scores the same
    assert loss == pytest.approx(result.test_loss, rel=1e-2)


def test_guided_backprop_and_feature_maps_on_cuda_under_autocast(split):
    torch.manual_seed(0)
    model = CNN(SMALL).eval()
    images = split[1].images[:4]
    image = data.normalize(images[:1])
    block = 3
    channel = int(viz.block_output(model, images[:1], block)[0].flatten(1).amax(1).argmax())  # a unit that fires
    on_cpu = viz.guided_backprop(model, image, channel, block)
    model.to(DEVICE)
    on_cuda = viz.guided_backprop(model, image.to(DEVICE), channel, block)
    exact_maps = viz.block_output(model, images, block=1)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        mixed = viz.guided_backprop(model, image.to(DEVICE), channel, block)
        mixed_maps = viz.block_output(model, images, block=1)
        figure = viz.plot_feature_maps(model, images[0])
    plt.close(figure)
    assert on_cuda.device.type == "cpu" and on_cuda.shape == on_cpu.shape == (3, 32, 32)
    assert cosine(on_cuda, on_cpu) > 0.99  # TF32 convolutions on the GPU round a little differently
    assert mixed.dtype == torch.float32 and torch.isfinite(mixed).all() and mixed.abs().sum() > 0
    assert cosine(mixed, on_cuda) > 0.5  # bf16 may move the strongest unit; it must not break the map
    assert mixed_maps.shape == exact_maps.shape == (4, SMALL.filters[0], 32, 32)
    assert ((mixed_maps - exact_maps).norm() / exact_maps.norm()).item() < 0.05
    assert not model.training and all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("strategy", finetune.STRATEGIES)
def test_one_fine_tuning_epoch_per_strategy(root, strategy):
    train_set, val_set = data.load_split(root, 64, verbose=False)
    # Every 8th image: all classes in a small set (the decoded set is in class order).
    train_set, val_set = train_set.subset(range(0, len(train_set), 8)), val_set.subset(range(0, len(val_set), 4))
    torch.manual_seed(0)
    model = finetune.build_model("resnet18", strategy, num_classes=len(train_set.classes), pretrained=False)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    frozen_modules = {name.rsplit(".", 1)[0] for name, p in model.named_parameters() if not p.requires_grad}
    tcfg = dataclasses.replace(finetune.FINETUNE_TRAIN, epochs=1, batch_size=32, augment=False, patience=0)
    out = finetune.fine_tune(model, strategy, train_set, val_set, tcfg, device=DEVICE, progress=False)
    assert 0.0 <= out["val_acc"] <= 1.0
    changed = {name for name, value in model.state_dict().items() if not torch.equal(value.cpu(), before[name])}
    assert {"fc.weight", "fc.bias"} <= changed, "the new head did not train"
    frozen_but_moved = {name for name in changed if name.rsplit(".", 1)[0] in frozen_modules}
    assert not frozen_but_moved, f"frozen weights or BatchNorm statistics moved: {sorted(frozen_but_moved)[:5]}"
    if strategy != "head":
        assert changed - {"fc.weight", "fc.bias"}, f"{strategy}: no backbone layer trained"


def test_cuda_cache_build_matches_the_cpu_one(tmp_path):
    """nvJPEG's IDCT and the GPU's antialiased resize round differently from libjpeg-turbo and the CPU
    kernel, so pixels may differ by a few grey levels: mean below 2, 99.9% within 16 (of 255)."""
    root = bench.make_synthetic(tmp_path / "jpegs", classes=2, per_class=6)
    cpu, cuda = (data.load_folder(root / "train", 64, cache_dir=tmp_path / decoder, decoder=decoder, progress=False)
                 for decoder in ("cpu", "cuda"))
    assert cuda.images.dtype == torch.uint8 and cuda.images.shape == cpu.images.shape == (12, 3, 64, 64)
    difference = gpu_stages.compare_decoded(cpu, cuda)
    assert difference["same_files_and_labels"]
    assert difference["mean_abs_diff"] < 2.0 and difference["share_over_16_levels"] <= 0.001, difference


def test_sweep_estimate_names_this_gpu():
    config = sweep_config("bayes", 32, 2, base_filters=[8, 16], batch_size=[64, 128])
    estimate = estimate_lib.estimate_sweep(1000, config, count=3, device=DEVICE)
    assert torch.cuda.get_device_name() in estimate["describe"] and estimate["total_seconds"] > 0
    assert all(point["batch_size"] in (64, 128) for point in estimate["speed"]["points"])  # a GPU warms up at full batch
