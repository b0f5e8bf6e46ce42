"""Part B fine-tuning: weights through torch hub's real path (planted, offline), heads, strategies, CLI."""
import json
import os
import subprocess
import sys
import urllib.error
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from shared import data, finetune
from shared.model import ConfigError
from shared.runtime import UserError
from shared.train import fit, predict
from test_train import copy_demo_dataset

REPO = Path(__file__).resolve().parent.parent
# name -> (units that first_k/last_k count, the head's input features)
ARCHITECTURES = {"resnet18": (4, 512), "resnet50": (4, 2048), "efficientnet_v2_s": (7, 1280),
                 "vit_b_16": (12, 768), "convnext_tiny": (4, 768)}


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty $TORCH_HOME, and no network: any download attempt fails at once."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")
    monkeypatch.setattr(torch.hub, "urlopen", refuse)
    return tmp_path / "torch"


def plant(name: str) -> dict:
    """A random-valued checkpoint under the weights' own file name: the hub cache then loads it offline."""
    state = torchvision.models.get_model(name).state_dict()
    path = finetune.weights_file(finetune.get_weights(name))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def test_planted_weights_load_through_torchvision(torch_home):
    torch.manual_seed(1)
    state = plant("resnet18")
    assert finetune.weights_file(finetune.get_weights("resnet18")).is_relative_to(torch_home)
    model = finetune.build_model("resnet18", "full")
    assert torch.equal(model.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert model.fc.out_features == 10 and model.fc.in_features == 512
    assert finetune.ensure_weights("resnet18").exists()


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_build_model_heads_and_units(name):
    units, features = ARCHITECTURES[name]
    model = finetune.build_model(name, "head", pretrained=False)
    head = finetune.get_head(model)
    assert isinstance(head, nn.Linear) and (head.in_features, head.out_features) == (features, 10)
    trainable, total = finetune.param_counts(model)
    assert trainable == features * 10 + 10 and total > 100 * trainable
    assert len(finetune.backbone_units(model)[1]) == units
    # last_k(k) trains what first_k(units - k) trains: both freeze the stem and the same first units
    finetune.apply_strategy(model, "last_k", 1)
    last = finetune.param_counts(model)[0]
    finetune.apply_strategy(model, "first_k", units - 1)
    assert finetune.param_counts(model)[0] == last
    finetune.apply_strategy(model, "full")
    assert finetune.param_counts(model) == (total, total)
    if name in ("resnet18", "convnext_tiny"):  # a forward pass at the weights' own crop size, cheap ones only
        crop = finetune.preprocessing(name)["crop_size"]
        with torch.no_grad():
            assert model.eval()(torch.zeros(1, 3, crop, crop)).shape == (1, 10)


def test_alexnet_and_vgg_units_are_their_layers_with_weights():
    """Their `features` used to count ReLU and max-pool entries as units, so last_k(1) trained a max-pool."""
    model = finetune.build_model("alexnet", "last_k", k=1, pretrained=False)
    stem, units = finetune.backbone_units(model)
    assert len(units) == 4 and all(isinstance(unit, nn.Conv2d) for unit in units)  # conv2..conv5
    assert all(p.requires_grad for p in model.features[10].parameters())  # the last conv trains
    assert not any(p.requires_grad for p in model.features[8].parameters())
    assert finetune.resolve_k(model, "last_k") == 2


@pytest.mark.parametrize("name, strategy, message", [
    ("squeezenet1_0", "head", "SqueezeNet has no Linear classification head"),
    ("squeezenet1_1", "full", "SqueezeNet has no Linear classification head"),
    ("raft_small", "head", "'raft_small' is not a torchvision classification model"),
    ("googlenet", "last_k", "first_k/last_k do not know the units of GoogLeNet"),
    ("regnet_y_400mf", "first_k", "first_k/last_k do not know the units of RegNet"),
])
def test_unsupported_models_are_refused_by_name_before_any_weights(name, strategy, message, torch_home):
    """Each used to load (or download) the weights and end in a traceback."""
    with pytest.raises(ConfigError, match=message) as info:
        finetune.check_supported(name, strategy)
    assert "ResNet" in str(info.value) or "list_models" in str(info.value)  # what is supported instead
    assert not list(torch_home.rglob("*.pth"))  # no weights were fetched (the network is off; nothing tried)


@pytest.mark.parametrize("name, strategy", [("googlenet", "head"), ("regnet_y_400mf", "full"),
                                            ("mobilenet_v3_small", "last_k"), ("alexnet", "first_k")])
def test_supported_models_pass_the_check(name, strategy):
    finetune.check_supported(name, strategy)


def test_strategies_freeze_the_right_units():
    model = finetune.build_model("resnet18", "first_k", k=1, pretrained=False)
    frozen = lambda module: not any(p.requires_grad for p in module.parameters())  # noqa: E731
    assert frozen(model.conv1) and frozen(model.layer1) and not frozen(model.layer2)
    assert not model.layer1[0].bn1.training and model.layer2[0].bn1.training  # frozen BN in eval mode
    model = finetune.build_model("resnet18", "last_k", k=1, pretrained=False)
    assert frozen(model.layer3) and not frozen(model.layer4) and not frozen(model.fc)
    vit = finetune.build_model("vit_b_16", "first_k", k=2, pretrained=False)
    assert not vit.class_token.requires_grad and not vit.encoder.pos_embedding.requires_grad
    assert frozen(vit.encoder.layers[1]) and not frozen(vit.encoder.layers[2]) and not frozen(vit.encoder.ln)
    with pytest.raises(ValueError, match="k must be in 0..4"):
        finetune.build_model("resnet18", "last_k", k=5, pretrained=False)
    with pytest.raises(ValueError, match="strategy must be one of"):
        finetune.build_model("resnet18", "middle", pretrained=False)


def test_discriminative_learning_rates():
    model = finetune.build_model("resnet18", "full", pretrained=False)
    backbone, head = finetune.param_groups(model, lr=1e-3)
    assert head["lr"] == 1e-3 and backbone["lr"] == pytest.approx(1e-4)
    assert {id(p) for p in head["params"]} == {id(p) for p in model.fc.parameters()}
    assert len(backbone["params"]) + len(head["params"]) == len(list(model.parameters()))
    model = finetune.build_model("resnet18", "head", pretrained=False)
    assert len(finetune.param_groups(model, lr=1e-3)) == 1


def tiny_sets(n=48, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % 10
    classes = [f"c{i}" for i in range(10)]
    return data.ImageSet(images[:32], labels[:32], classes), data.ImageSet(images[32:], labels[32:], classes)


def test_frozen_batchnorm_statistics_do_not_drift():
    torch.manual_seed(0)
    model = finetune.build_model("resnet18", "last_k", k=1, pretrained=False)
    frozen_bn, trained_bn = model.layer1[0].bn1, model.layer4[0].bn1
    before = frozen_bn.running_mean.clone(), trained_bn.running_mean.clone()
    train_set, val_set = tiny_sets()
    tcfg = replace(finetune.FINETUNE_TRAIN, epochs=1, batch_size=16, augment=False)
    fit(model, train_set, val_set, tcfg, "cpu", param_groups=finetune.param_groups(model, tcfg.lr),
        progress=False, on_train=finetune.freeze_bn)
    assert torch.equal(frozen_bn.running_mean, before[0])
    assert not torch.equal(trained_bn.running_mean, before[1])


def test_head_strategy_trains_on_features_and_returns_a_whole_model():
    torch.manual_seed(0)
    model = finetune.build_model("resnet18", "head", pretrained=False)
    backbone_before = model.layer4[1].conv2.weight.clone()
    train_set, val_set = tiny_sets()
    result = finetune.fine_tune(model, "head", train_set, val_set, replace(finetune.FINETUNE_TRAIN, batch_size=16),
                                device="cpu", progress=False)
    assert isinstance(model.fc, nn.Linear) and model.fc.out_features == 10
    assert torch.equal(model.layer4[1].conv2.weight, backbone_before)
    assert result["trainable_params"] == 512 * 10 + 10 and len(result["epoch_seconds"]) == 1
    # the reported val_acc is the whole model's accuracy on the validation images
    probs = predict(model, val_set)
    assert (probs.argmax(1) == val_set.labels).float().mean().item() == pytest.approx(result["val_acc"], abs=1e-6)
    assert all(p.grad is None for p in model.parameters())  # the head's last step left no gradients behind


def test_preprocessing_follows_the_weights():
    assert finetune.preprocessing("resnet50") == {"crop_size": 224, "resize_size": 232, "mean": data.MEAN,
                                                  "std": data.STD}
    assert finetune.preprocessing("efficientnet_v2_s")["crop_size"] == 384
    small = finetune.preprocessing("resnet50", 64)
    assert (small["crop_size"], small["resize_size"]) == (64, 66)
    with pytest.raises(ValueError, match="needs exactly its 224px crop"):
        finetune.preprocessing("vit_b_16", 64)


def test_missing_weights_fail_with_one_clear_line(torch_home):
    with pytest.raises(finetune.WeightsUnavailable) as info:
        finetune.build_model("resnet18", "head")
    message = str(info.value)
    assert "\n" not in message and "ResNet18_Weights.IMAGENET1K_V1" in message
    assert str(torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert not finetune.weights_or_random("resnet18", "demo")  # the notebooks' path: a banner, then random init


def test_damaged_weights_file_is_reported(torch_home):
    path = finetune.weights_file(finetune.get_weights("resnet18"))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"half a download")
    with pytest.raises(finetune.WeightsUnavailable, match="is damaged"):
        finetune.build_model("resnet18", "head")


def cli(args, torch_home, tmp_path):
    env = {**os.environ, "TORCH_HOME": str(torch_home), "INAT_OUTPUTS": str(tmp_path / "outputs"),
           "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}  # no download, fast
    return subprocess.run([sys.executable, "-m", "shared", "finetune", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_without_weights_prints_one_line_and_exits_1(torch_home, tmp_path):
    out = cli(["--model", "resnet18", "--strategy", "head", "--input-size", "32"], torch_home, tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "resnet18-f37072fd.pth" in errors[0]


def test_cli_finetune_with_planted_weights(torch_home, tmp_path):
    plant("resnet18")
    out = cli(["--model", "resnet18", "--strategy", "last_k", "--k", "1", "--epochs", "1", "--input-size", "32",
               "--test", "--json", str(tmp_path / "r.json")], torch_home, tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["trainable_params"] == 8_398_858 and result["total_params"] == 11_181_642  # layer4 + fc
    assert 0 <= result["val_acc"] <= 1 and 0 <= result["test_acc"] <= 1 and len(result["epoch_seconds"]) == 1
    assert result["weights"] == "ResNet18_Weights.IMAGENET1K_V1"
    assert (result["input_size"], result["resize_size"]) == (32, 37)  # 256/224 of the crop, as the weights do


# --------------------------------------------------------------------------------------------
# Random weights only on purpose; the k that was used; the class count from the data
# --------------------------------------------------------------------------------------------
def test_full_mode_without_weights_stops_with_the_download_instructions(torch_home, capsys):
    """Full mode (real data) used to fine-tune random weights behind a banner and report the numbers."""
    with pytest.raises(finetune.WeightsUnavailable) as info:
        finetune.weights_or_random("resnet18", "full")
    message = str(info.value)
    assert "\n" not in message and "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert "allow_random=True" in message and "--random-init" in message
    assert isinstance(info.value, UserError)  # the CLI prints it as one line
    assert "RANDOM INITIALISATION" not in capsys.readouterr().out
    with pytest.raises(finetune.WeightsUnavailable):
        finetune.weights_or_random("resnet18", "demo", allow_random=False)  # the CLI without --random-init


@pytest.mark.parametrize("mode, allow_random", [("demo", None), ("quick", None), ("full", True)])
def test_random_weights_in_demo_quick_or_on_request(torch_home, capsys, mode, allow_random):
    assert finetune.weights_or_random("resnet18", mode, allow_random) is False
    assert "RANDOM INITIALISATION" in capsys.readouterr().out  # never silently


def test_cached_weights_are_used_in_every_mode(torch_home):
    plant("resnet18")
    assert all(finetune.weights_or_random("resnet18", mode) for mode in ("full", "demo", "quick"))


def test_resolve_k_is_the_one_default():
    model = finetune.build_model("resnet18", "head", pretrained=False)
    assert finetune.resolve_k(model, "first_k") == 2 and finetune.resolve_k(model, "last_k", 3) == 3
    assert finetune.resolve_k(model, "head", 3) is None and finetune.resolve_k(model, "full") is None
    with pytest.raises(UserError, match="k must be in 0..4"):
        finetune.resolve_k(model, "first_k", -1)


def test_run_finetune_head_has_as_many_outputs_as_the_data_has_classes(tmp_path):
    """11 class folders used to give a 10-way head and fail with 'Target 10 is out of bounds'."""
    root = copy_demo_dataset(tmp_path / "data", train_classes=11, train_per_class=5)
    tcfg = replace(finetune.FINETUNE_TRAIN, batch_size=16)
    result = finetune.run_finetune(root, "resnet18", "head", input_size=32, test=True, allow_random=True,
                                   tcfg=tcfg, device="cpu", progress=False)
    assert result["classes"] == [f"class_{c:02d}" for c in range(11)]
    assert result["trainable_params"] == 512 * 11 + 11  # the head alone, 11 outputs
    assert result["weights"] == "random init" and 0 <= result["test_acc"] <= 1


def test_run_finetune_refuses_bad_settings_before_the_data(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "find_data", lambda *a, **k: pytest.fail("the data was looked at first"))
    for kwargs in (dict(epochs=0), dict(input_size=0), dict(input_size=-32)):
        with pytest.raises(UserError):
            finetune.run_finetune(None, "resnet18", "head", allow_random=True, **kwargs)
    with pytest.raises(UserError, match="not a torchvision classification model"):
        finetune.run_finetune(None, "resnet_9000", "head", allow_random=True)


def test_cli_first_k_without_k_records_the_k_it_used(torch_home, tmp_path):
    """`--strategy first_k` without --k trained with k=2 but wrote "k": null."""
    out = cli(["--model", "resnet18", "--strategy", "first_k", "--epochs", "1", "--input-size", "32", "--random-init",
               "--json", str(tmp_path / "r.json")], torch_home, tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["k"] == 2 and result["weights"] == "random init"
    assert result["trainable_params"] == 11_181_642 - 683_072  # conv1+bn1 (9,536) and layer1..2 (673,536) frozen


# --------------------------------------------------------------------------------------------
# Four different strategies (issue 19, section 4)
# --------------------------------------------------------------------------------------------
def notebook_settings(path: Path) -> dict:
    """The SETTINGS dict of a notebook's setup cell, evaluated alone (only literals and dict(...) in it)."""
    import ast
    source = "".join(json.loads(path.read_text())["cells"][1]["source"])
    assign = next(node for node in ast.parse(source).body
                  if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "SETTINGS")
    return eval(compile(ast.Expression(assign.value), str(path), "eval"), {"dict": dict})


def test_strategies_that_train_the_same_parameters_are_refused_in_one_line(torch_home):
    """ResNet50 has four stages: first_k 2 and last_k 2 both train layer3, layer4 and the head (22,083,594
    parameters), and Part-B/01's full mode compared them as if they differed."""
    with pytest.raises(ConfigError) as info:
        finetune.check_distinct("resnet50", [("head", None), ("first_k", 2), ("last_k", 2), ("full", None)])
    message = str(info.value)
    assert "\n" not in message and "first_k (k=2) and last_k (k=2) train the same" in message
    with pytest.raises(ConfigError, match="first_k \\(k=0\\) and last_k \\(k=4\\)"):  # both freeze the stem only
        finetune.check_distinct("resnet18", [("first_k", 0), ("last_k", 4), ("full", None)])
    finetune.check_distinct("resnet50", [("head", None), ("first_k", 2), ("last_k", 1), ("full", None)])
    assert not list(torch_home.rglob("*.pth"))  # the meta-device architecture only: no weights


@pytest.mark.parametrize("mode", ["full", "demo", "quick"])
def test_part_b_01_compares_four_different_strategies_in_every_mode(mode):
    settings = notebook_settings(REPO / "Part-B" / "01_finetune_strategies.ipynb")[mode]
    assert sorted(strategy for strategy, _ in settings["strategies"]) == sorted(finetune.STRATEGIES)
    finetune.check_distinct(settings["model"], settings["strategies"])
