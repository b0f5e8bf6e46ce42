"""The training engine: reproducible, a real best checkpoint, atomic saves, augmentation, failures, result."""
import math
import os

import pytest
import torch

from shared import augment, data, train as train_lib
from shared.model import CNN, CNNConfig
from shared.runtime import REPO_ROOT as REPO, UserError
from shared.train import Diverged, TrainConfig

TINY = CNNConfig(filters=(8,) * 5, kernel_sizes=(3,) * 5, activation="relu", dense_neurons=32, input_size=32)


def fast(**overrides):
    return TrainConfig(**{"epochs": 2, "batch_size": 64, "augment": False, "patience": 0, **overrides})


@pytest.fixture(scope="module")
def root():
    return data.find_data()


@pytest.fixture(scope="module")
def split(root):
    train_set, val_set = data.load_split(root, 32, verbose=False)
    # A few hundred images keep each epoch well under a second on a CPU.
    return train_set.subset(range(0, len(train_set), 4)), val_set.subset(range(0, len(val_set), 2))


def test_reproducible_on_cpu(root):
    first = train_lib.train(TINY, root, fast(augment=True), device="cpu", progress=False, verbose=False)
    second = train_lib.train(TINY, root, fast(augment=True), device="cpu", progress=False, verbose=False)
    assert [r["train_loss"] for r in first.history] == [r["train_loss"] for r in second.history]
    assert first.val_acc == second.val_acc
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)


def test_best_checkpoint_is_the_best_epoch_not_the_last(split, monkeypatch):
    """Scripted val accuracies peak at epoch 2; a shallow state_dict().copy() would return epoch 4."""
    scripted = iter([0.5, 0.9, 0.3, 0.2])
    monkeypatch.setattr(train_lib, "evaluate", lambda *args, **kwargs: (1.0, next(scripted)))
    model, snapshots = CNN(TINY), []
    out = train_lib.fit(model, *split, fast(epochs=4), device="cpu", progress=False,
                        on_epoch=lambda row: snapshots.append({k: v.clone() for k, v in model.state_dict().items()}))
    assert out["best_epoch"] == 2 and out["val_acc"] == 0.9
    key = "blocks.0.conv.weight"
    assert torch.equal(out["best_state"][key], snapshots[1][key])
    assert not torch.equal(snapshots[1][key], snapshots[3][key])  # the weights did move after epoch 2
    assert torch.equal(model.state_dict()[key], snapshots[1][key])  # the best weights are loaded back


def test_early_stopping_on_val_acc(split, monkeypatch):
    scripted = iter([0.5, 0.9, 0.3, 0.2, 0.1, 0.1])
    monkeypatch.setattr(train_lib, "evaluate", lambda *args, **kwargs: (1.0, next(scripted)))
    out = train_lib.fit(CNN(TINY), *split, fast(epochs=6, patience=2), device="cpu", progress=False)
    assert len(out["history"]) == 4 and out["best_epoch"] == 2


def test_checkpoint_is_saved_atomically_and_loads(root, tmp_path, monkeypatch):
    path = tmp_path / "best.pt"
    result = train_lib.train(TINY, root, fast(epochs=1), device="cpu", checkpoint=path, progress=False, verbose=False)
    model, saved = train_lib.load_checkpoint(path)
    assert saved["val_acc"] == result.val_acc and saved["best_epoch"] == 1
    for a, b in zip(model.state_dict().values(), result.model.state_dict().values()):
        assert torch.equal(a, b)
    before = path.read_bytes()

    def crash(obj, f):
        open(f, "wb").write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        train_lib.save_atomic({"x": 1}, path)
    assert path.read_bytes() == before  # the old checkpoint survives a crash mid-write
    assert sorted(os.listdir(tmp_path)) == ["best.pt"]  # no temporary file left behind


def test_augmentation_shapes_and_ranges():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 32, 32)
    out = augment.augment_batch(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, x)
    images = (x * 255).to(torch.uint8)
    plain = augment.prepare_batch(images, torch.device("cpu"), False, data.MEAN, data.STD)
    augmented = augment.prepare_batch(images, torch.device("cpu"), True, data.MEAN, data.STD)
    assert plain.shape == augmented.shape == (16, 3, 32, 32) and plain.dtype == torch.float32
    assert plain.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(plain, data.normalize(images), atol=1e-5)  # no augmentation: plain normalisation
    lowest = (0 - max(data.MEAN)) / min(data.STD)
    highest = (1 - min(data.MEAN)) / min(data.STD)
    assert augmented.min() >= lowest - 1e-4 and augmented.max() <= highest + 1e-4


def test_nan_loss_raises_diverged_and_memory_is_released(root, monkeypatch):
    released = []
    monkeypatch.setattr(train_lib, "release_memory", lambda: released.append(1))
    diverging = fast(epochs=1)
    diverging.lr = 1e9  # past TrainConfig's bound on purpose, set after its check: the loop's own guard is tested
    with pytest.raises(Diverged):
        train_lib.train(TINY, root, diverging, device="cpu", progress=False, verbose=False)
    assert released == [1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU to measure device memory")
def test_gpu_memory_does_not_grow_across_runs(root):
    train_lib.train(TINY, root, fast(epochs=1), progress=False, verbose=False)
    after_first = torch.cuda.memory_allocated()
    for _ in range(2):
        train_lib.train(TINY, root, fast(epochs=1), progress=False, verbose=False)
    assert torch.cuda.memory_allocated() <= after_first


def test_result_keys(root):
    result = train_lib.train(TINY, root, fast(epochs=1), device="cpu", progress=False, verbose=False)
    d = result.to_dict()
    for key in ["config", "val_acc", "best_epoch", "epoch_seconds", "cache_seconds", "images_per_second",
                "params", "macs", "split", "skipped", "history"]:
        assert key in d, key
    assert "test_acc" not in d
    assert set(d["split"]) == {"train", "val"} and sum(d["split"]["val"].values()) > 0
    assert d["config"]["filters"] == (8,) * 5 and d["config"]["epochs"] == 1
    row = d["history"][0]
    for key in ["train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds", "images_per_second"]:
        assert key in row, key
    with_test = train_lib.train(TINY, root, fast(epochs=1), test=True, device="cpu", progress=False,
                                verbose=False).to_dict()
    assert 0 <= with_test["test_acc"] <= 1


def test_auto_compile_only_where_it_pays(monkeypatch):
    """Light configs never repay a compile in a sweep run, heavy ones do; never on CPU or a P100."""
    from shared.formulas import count_macs
    from shared.model import make_filters

    cuda = torch.device("cuda")
    light = count_macs(CNNConfig(filters=(32,) * 5, input_size=224))
    heavy = count_macs(CNNConfig(filters=make_filters(512, "halving"), input_size=224))
    sweep_run = 15 * 8_000  # 15 epochs of the 80 % split
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert not train_lib.should_compile("auto", cuda, sweep_run, light)
    assert train_lib.should_compile("auto", cuda, sweep_run, heavy)
    assert train_lib.should_compile("true", cuda, 10, light)
    assert not train_lib.should_compile("false", cuda, sweep_run, heavy)
    assert not train_lib.should_compile("auto", torch.device("cpu"), sweep_run, heavy)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (6, 0))  # P100: no Triton
    assert not train_lib.should_compile("true", cuda, sweep_run, heavy)


def test_the_macs_the_compile_decision_uses_agree_with_the_formula():
    from shared.formulas import count_macs, torch_counts

    model = CNN(TINY)
    assert torch_counts(model, 32)[1] == count_macs(TINY)
    assert model.training  # the count leaves the model as it found it


def test_cli_train_prints_json_alone_on_stdout():
    """Progress bars and tables go to stderr, so `python -m shared train | jq` works."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "shared", "train", "--input-size", "32", "--epochs", "1",
                          "--set", "filters=4,4,4,4,4", "--set", "batch_norm=false", "--set", "dense_neurons=8"],
                         capture_output=True, text=True, check=True, cwd=str(REPO))
    result = json.loads(out.stdout)
    assert result["config"]["filters"] == [4, 4, 4, 4, 4] and result["config"]["batch_norm"] is False
    assert "test_acc" not in result  # the test set is read only with --test
    assert "train" in out.stderr or "epoch" in out.stderr


# --------------------------------------------------------------------------------------------
# Bad input is refused before any work; the number of classes comes from the data
# --------------------------------------------------------------------------------------------
def copy_demo_dataset(dest, train_classes: int, val_classes: int | None = None, train_per_class: int = 10,
                      val_per_class: int = 2):
    """A small nature_12K-shaped folder of real demo JPEGs with any number of classes (names class_00, ...)."""
    import shutil

    source = sorted(p for p in (data.find_data() / "train").glob("*/*.jpg"))
    files = iter(source)
    for split, classes, per_class in (("train", train_classes, train_per_class),
                                      ("val", train_classes if val_classes is None else val_classes, val_per_class)):
        for c in range(classes):
            folder = dest / split / f"class_{c:02d}"
            folder.mkdir(parents=True)
            for _ in range(per_class):
                shutil.copy(next(files), folder)
    return dest


@pytest.fixture
def no_decoding(monkeypatch):
    """Any image decoding fails the test: the refusal must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("images were decoded before the bad input was refused")
    monkeypatch.setattr(data, "load_folder", refuse)


def test_number_of_classes_comes_from_the_data(tmp_path):
    """11 class folders used to train a 10-way model and fail with 'Target 10 is out of bounds'."""
    root = copy_demo_dataset(tmp_path, train_classes=11, train_per_class=5)
    result = train_lib.train(TINY, root, fast(epochs=1, batch_size=16), test=True, device="cpu", progress=False,
                             verbose=False)
    assert result.model.out.out_features == 11 and result.config["num_classes"] == 11
    assert len(result.split["train"]) == 11 and 0 <= result.test_acc <= 1


def test_one_class_is_refused_before_decoding(tmp_path, no_decoding):
    """One class folder used to train a 10-way model and report test_acc 1.0."""
    root = copy_demo_dataset(tmp_path, train_classes=1)
    with pytest.raises(data.DataError, match="at least 2"):
        train_lib.train(TINY, root, fast(), device="cpu", progress=False, verbose=False)


def test_val_classes_that_differ_are_refused_before_decoding(tmp_path, no_decoding):
    """val/ with other class names used to fail only after the whole training, with no result."""
    root = copy_demo_dataset(tmp_path, train_classes=3)
    (root / "val" / "class_02").rename(root / "val" / "class_xx")
    with pytest.raises(UserError):
        train_lib.train(TINY, root, fast(), device="cpu", progress=False, verbose=False)


def test_no_validation_images_is_refused_before_the_first_epoch(tmp_path):
    """2 images per class leave round(0.2 * 2) = 0 for validation: this used to train, then fail in
    load_state_dict(None) with a TypeError."""
    root = copy_demo_dataset(tmp_path, train_classes=3, train_per_class=2)
    epochs = []
    with pytest.raises(UserError):
        train_lib.train(TINY, root, fast(), device="cpu", progress=False, verbose=False, on_epoch=epochs.append)
    assert epochs == []


@pytest.mark.parametrize("setting", [dict(epochs=0), dict(epochs=-1), dict(batch_size=0), dict(lr=0.0),
                                     dict(lr=-1e-3), dict(patience=-1), dict(val_fraction=0.0),
                                     dict(val_fraction=1.0), dict(weight_decay=-0.1), dict(optimizer="adam"),
                                     dict(schedule="step"), dict(label_smoothing=1.0), dict(compile="maybe"),
                                     # ±inf, NaN and typos for 1e-3 used to train (to NaN) or exit 0:
                                     dict(lr=math.inf), dict(lr=math.nan), dict(lr=11.0), dict(weight_decay=math.inf),
                                     dict(weight_decay=math.nan), dict(weight_decay=1.5), dict(seed=-1),
                                     dict(seed=2**32)])
def test_train_config_refuses_bad_settings(setting):
    """batch_size=0 used to divide by zero mid-run; epochs=0 and val_fraction=0 to fail after training."""
    with pytest.raises(UserError, match=next(iter(setting))) as info:
        TrainConfig(**setting)
    assert isinstance(info.value, ValueError)  # callers that caught ValueError keep working


def test_bounds_of_lr_and_weight_decay_are_allowed():
    assert TrainConfig(lr=10.0, weight_decay=1.0).lr == 10.0 and TrainConfig(weight_decay=0.0).weight_decay == 0.0


def test_a_model_for_other_than_rgb_images_is_refused_before_decoding(tmp_path, no_decoding):
    """in_channels=1 used to decode every image, then crash in the first convolution. The model itself
    stays general (its formulas are checked at 1 channel too): only training on RGB images needs 3."""
    root = copy_demo_dataset(tmp_path, train_classes=2)
    gray = CNNConfig(**{**TINY.to_dict(), "in_channels": 1})
    with pytest.raises(UserError, match="in_channels must be 3"):
        train_lib.train(gray, root, fast(), device="cpu", progress=False, verbose=False)


def test_test_set_with_no_readable_image_is_refused_before_the_first_epoch(tmp_path):
    """`test=True` with only unreadable files in val/ used to train, then report test_acc NaN."""
    root = copy_demo_dataset(tmp_path, train_classes=2)
    for image in (root / "val").rglob("*.jpg"):
        image.write_bytes(b"not a jpeg")
    epochs = []
    with pytest.raises(UserError, match="no readable test image"):
        train_lib.train(TINY, root, fast(), test=True, device="cpu", progress=False, verbose=False,
                        on_epoch=epochs.append)
    assert epochs == []


@pytest.mark.parametrize("setting", [dict(dropout=1.0), dict(dropout=-0.1), dict(input_size=16),
                                     dict(dense_neurons=0), dict(num_classes=1), dict(activation="relu6")])
def test_cnn_config_refuses_bad_settings(setting):
    with pytest.raises(UserError):
        CNNConfig(**setting)


def test_train_returns_a_model_without_gradients(root):
    result = train_lib.train(TINY, root, fast(epochs=1), test=True, device="cpu", progress=False, verbose=False)
    assert all(p.grad is None for p in result.model.parameters())


def test_evaluate_matches_a_reference_from_predict(split):
    """evaluate() sums cross-entropy and hits on the device from the logits; the numbers are those of
    the probabilities that predict() returns."""
    torch.manual_seed(0)
    model = CNN(TINY)
    _, val_set = split
    loss, accuracy = train_lib.evaluate(model, val_set, batch_size=37)  # a last batch of another size
    probs = train_lib.predict(model, val_set, batch_size=37)
    reference_loss = torch.nn.functional.nll_loss(probs.log(), val_set.labels).item()
    reference_accuracy = (probs.argmax(1) == val_set.labels).float().mean().item()
    assert loss == pytest.approx(reference_loss, abs=1e-5)
    assert accuracy == pytest.approx(reference_accuracy, abs=1e-5)
    assert model.training  # both leave the model as they found it
    empty = val_set.subset([])
    assert all(v != v for v in train_lib.evaluate(model, empty))  # nan, nan: nothing to average


@pytest.mark.parametrize("total_steps", [1, 2, 3, 5, 10, 37])
def test_onecycle_schedule_works_for_any_number_of_steps(total_steps):
    """OneCycleLR raised ZeroDivisionError when total_steps x warmup_fraction == 1 (e.g. 5 steps at 0.2)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    schedule = train_lib._make_schedule(optimizer, fast(), total_steps)
    rates = []
    for _ in range(total_steps):
        optimizer.step()
        schedule.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert all(rate > 0 for rate in rates[:-1]) and max(rates) <= 0.1 + 1e-12


def _grads_after_one_step(micro_batch: int, batch_norm: bool) -> dict:
    torch.manual_seed(0)
    model = CNN(CNNConfig(filters=(8,) * 5, kernel_sizes=(3,) * 5, activation="relu", dense_neurons=16,
                          input_size=32, batch_norm=batch_norm, dropout=0.0))
    grads = {}
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    full = data.ImageSet(images, torch.arange(40) % 10, [str(c) for c in range(10)])
    original = train_lib._optimizer_step

    def record(model_, *args):
        grads.update({n: p.grad.clone() for n, p in model_.named_parameters() if not grads})
        original(model_, *args)

    train_lib._optimizer_step = record
    try:
        train_lib.fit(model, full.subset(range(32)), full.subset(range(32, 40)),
                      fast(epochs=1, batch_size=32, micro_batch=micro_batch, lr=1e-3), "cpu", progress=False)
    finally:
        train_lib._optimizer_step = original
    return grads


def test_micro_batches_give_the_same_gradients_as_one_batch():
    """Gradient accumulation: 4 micro-batches of 8 give the one batch of 32's gradients (without BatchNorm, whose
    statistics are per micro-batch by design), so one optimiser step per drawn batch sees the same loss."""
    whole, parts = _grads_after_one_step(0, False), _grads_after_one_step(8, False)
    assert whole.keys() == parts.keys()
    for name in whole:
        torch.testing.assert_close(parts[name], whole[name], rtol=1e-4, atol=1e-6)
    with_bn = _grads_after_one_step(8, True), _grads_after_one_step(0, True)
    assert not torch.allclose(with_bn[0]["blocks.0.conv.weight"], with_bn[1]["blocks.0.conv.weight"])


def test_activation_bytes_match_a_cpu_measurement_under_16_bit_autocast():
    """The meta-device figure the memory plan uses equals what autograd really saves on a CPU under bf16
    autocast (distinct storages, counted with saved_tensors_hooks), for BN and no-BN, relu and gelu."""
    for cfg in (CNNConfig(filters=(16, 8, 8, 8, 8), kernel_sizes=(5,) * 5, activation="gelu", input_size=64),
                CNNConfig(filters=(8,) * 5, activation="relu", batch_norm=False, input_size=32)):
        model = CNN(cfg).train()
        saved = {}

        def pack(t):
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        x = torch.zeros(1, 3, cfg.input_size, cfg.input_size)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", torch.bfloat16):
            model(x)
        weights = sum(p.numel() * 2 for n, p in model.named_parameters() if p.dim() > 1)  # autocast's 16-bit copies
        per_image, largest = train_lib.activation_bytes(model, cfg.input_size)
        measured = sum(saved.values())
        assert abs(measured - per_image) <= weights + 4096, (measured, per_image)
        assert largest <= per_image
