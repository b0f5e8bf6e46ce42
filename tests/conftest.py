"""Test settings. The notebook kernels that nbval starts inherit this environment."""
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
os.environ["INAT_QUICK"] = "1"          # notebooks pick their tiny settings
os.environ["WANDB_MODE"] = "offline"    # real W&B, no network, no key
os.environ["WANDB_SILENT"] = "true"
os.environ.setdefault("INAT_OUTPUTS", str(REPO / "outputs" / "test-run"))  # keep make-run outputs apart
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.pop("INAT_DATA", None)       # tests run on the embedded demo data
sys.path.insert(0, str(REPO))


def pytest_configure(config):
    # torchvision 0.29 deprecates decode_image/decode_jpeg (for TorchCodec) and warns on every call; decode.py
    # still uses them on purpose (see its decoders), so the warning is noise in test output.
    config.addinivalue_line(
        "filterwarnings", "ignore:The image decoding and encoding capabilities of TorchVision:DeprecationWarning")
