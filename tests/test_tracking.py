"""W&B mode selection and figure logging: real wandb, offline, no key, no network."""
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from shared import tracking  # noqa: E402

SHARED = Path(tracking.__file__).parent


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No key anywhere: no env vars, an empty HOME (no ~/.netrc from an earlier `wandb login`)."""
    for name in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    return tmp_path


def test_no_key_means_offline_with_a_notice(clean_env, capsys):
    assert tracking.setup_wandb() == "offline"
    assert tracking.os.environ["WANDB_MODE"] == "offline"
    assert "offline" in capsys.readouterr().out


def test_an_explicit_wandb_mode_wins(clean_env, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert tracking.setup_wandb() == "disabled"


def test_a_key_means_online(clean_env, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)  # never used to connect: only the mode is chosen here
    assert tracking.setup_wandb() == "online"


def test_an_earlier_login_means_online(clean_env):
    (clean_env / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "1" * 40 + "\n")
    (clean_env / ".netrc").chmod(0o600)
    assert tracking.setup_wandb() == "online"


def test_wandb_init_never_hard_codes_mode():
    """mode= in wandb.init would override WANDB_MODE, the switch users and tests rely on."""
    for path in SHARED.glob("*.py"):
        for call in re.findall(r"wandb\.init\((.*?)\)", path.read_text(), flags=re.S):
            assert "mode=" not in call, path


def test_logged_figures_are_real_uint8_images_not_black(clean_env, monkeypatch):
    """wandb 0.31 saves float arrays in [0, 1] as all-black PNGs; figures go in as uint8 PIL images."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow(np.linspace(0, 1, 100).reshape(10, 10), cmap="viridis")
    assert tracking.log_figures({"ramp": fig}, run_name="test-figure") is not None
    plt.close(fig)
    pngs = list((clean_env / "wandb").glob("offline-run-*/files/media/images/*.png"))
    assert pngs, "the figure was not written to the offline run"
    pixels = np.asarray(Image.open(pngs[0]).convert("RGB"))
    assert pixels.dtype == np.uint8 and pixels.max() > 200 and pixels.std() > 20
