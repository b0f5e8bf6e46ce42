"""The benchmark's JSON shape on a tiny ImageFolder (no timing assertions: machines differ)."""
import json

import pytest
from PIL import Image

from shared import bench
from shared.__main__ import main


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    for c in range(2):
        folder = root / "train" / f"class_{c}"
        folder.mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (80, 60), (40 * i, 100 * c, 50)).save(folder / f"{i}.jpg")
    return root


def test_bench_json_shape(tiny_folder):
    result = bench.run_bench(tiny_folder, input_size=32, batch_size=4, epochs=2, configs=("light",), device="cpu")
    assert result["input_size"] == 32 and result["batch_size"] == 4 and result["epochs"] == 2
    assert result["machine"]["device"] == "cpu" and result["machine"]["cpu_count"] >= 1
    light = result["configs"]["light"]
    for pipeline in ("engine", "typical"):
        assert len(light[pipeline]["epoch_seconds"]) == 2
        assert light[pipeline]["steady_epoch_seconds"] > 0 and light[pipeline]["images_per_second"] > 0
    assert light["engine"]["cache_images_per_second"] > 0
    assert light["speedup"] == pytest.approx(light["engine"]["images_per_second"]
                                             / light["typical"]["images_per_second"])
    json.dumps(result)


def test_cli_writes_the_json(tiny_folder, tmp_path):
    out = tmp_path / "bench.json"
    main(["bench", "--data", str(tiny_folder), "--input-size", "32", "--batch-size", "4", "--epochs", "1",
          "--configs", "light", "--json", str(out)])
    assert set(json.loads(out.read_text())["configs"]) == {"light"}


def test_synthetic_dataset_is_photo_like(tmp_path):
    root = bench.make_synthetic(tmp_path / "synthetic", classes=2, per_class=1)
    files = sorted((root / "train").rglob("*.jpg"))
    assert len(files) == 2 and Image.open(files[0]).size == (800, 600)
    assert 50_000 < files[0].stat().st_size < 200_000  # about 100 KB, like a real photo
    assert bench.make_synthetic(tmp_path / "synthetic", classes=2, per_class=1) == root  # built once
